"""The Data Docs' validation page renderer (named in jobs/batch/data_docs.py's site
configuration; Great Expectations imports it by name).

GX 1.24's page renderer reads the data asset's name from the result's ``batch_kwargs`` or
``batch_spec``, which a fluent data source's batch does not fill, so every page says
``Data asset: None``. This one passes the asset name the result's batch definition holds.
"""

from __future__ import annotations

import copy

from great_expectations.render.renderer import ValidationResultsPageRenderer


class ValidationPage(ValidationResultsPageRenderer):
    def render(self, validation_results, suite_parameters=None):
        meta = validation_results.meta
        definition = meta.get("active_batch_definition")  # a dict once read from the store
        asset = (definition.get("data_asset_name") if isinstance(definition, dict)
                 else getattr(definition, "data_asset_name", None))
        spec = meta.get("batch_spec") or {}
        if asset and not spec.get("data_asset_name"):
            # a copy: the result object is the store's, and the store is not ours to change
            validation_results = copy.deepcopy(validation_results)
            validation_results.meta["batch_spec"] = {**spec, "data_asset_name": asset}
        return super().render(validation_results, suite_parameters)
