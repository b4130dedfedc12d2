"""Great Expectations suites, as code, over what a reconciliation recomputed; results in Data
Docs (HTML, opened from disk).

Three suites:

* ``accepted_transactions``: the recomputed accepted transactions: every §1 field present,
  amounts and event times in the contract's ranges, currency / kind / channel in their
  allow-lists, country two capital letters, ``txn_id`` unique;
* ``aggregates``: the batch aggregates: ``net_cents = purchase_cents - refund_cents``,
  ``txn_count = purchase_count + refund_count``, windows aligned to ``event_time.window_ms``;
* ``run_rates``: the run's DLQ, duplicate and late rates under ``[quality]`` thresholds.

The file data context lives in ``<data_dir>/gx`` (written on first use; the suites are rebuilt
from this module on every run, so the code is their only definition). Data Docs:
``<data_dir>/gx/uncommitted/data_docs/local_site/index.html``.
"""

from __future__ import annotations

from pathlib import Path

from udfs import contract


def suite_expectations(cfg) -> dict[str, list]:
    import great_expectations as gx  # deferred: seconds to import, only a run's suites need it

    E = gx.expectations
    c = cfg.contract
    accepted = [E.ExpectColumnValuesToNotBeNull(column=n) for n in contract.FIELD_NAMES]
    accepted += [
        E.ExpectColumnValuesToBeBetween(column="amount_cents", min_value=c.min_amount_cents,
                                        max_value=c.max_amount_cents),
        E.ExpectColumnValuesToBeBetween(column="event_time_ms", min_value=c.min_event_time_ms,
                                        max_value=c.max_event_time_ms - 1),
        E.ExpectColumnValuesToBeInSet(column="currency", value_set=list(c.currencies)),
        E.ExpectColumnValuesToBeInSet(column="kind", value_set=list(contract.KINDS)),
        E.ExpectColumnValuesToBeInSet(column="channel", value_set=list(contract.CHANNELS)),
        E.ExpectColumnValuesToMatchRegex(column="country", regex=contract.COUNTRY_PATTERN),
        E.ExpectColumnValuesToBeUnique(column="txn_id"),
    ]
    aggregates = [
        E.ExpectColumnPairValuesToBeEqual(column_A="net_cents",
                                          column_B="purchase_minus_refund_cents"),
        E.ExpectColumnPairValuesToBeEqual(column_A="txn_count",
                                          column_B="purchase_plus_refund_count"),
        E.ExpectColumnValuesToBeInSet(column="window_offset_ms", value_set=[0]),
        E.ExpectColumnValuesToBeInSet(column="window_length_ms",
                                      value_set=[cfg.event_time.window_ms]),
    ]
    q = cfg.quality
    rates = [
        E.ExpectColumnValuesToBeBetween(column="dlq_rate", min_value=0,
                                        max_value=q.max_dlq_rate),
        E.ExpectColumnValuesToBeBetween(column="duplicate_rate", min_value=0,
                                        max_value=q.max_duplicate_rate),
        E.ExpectColumnValuesToBeBetween(column="late_rate", min_value=0,
                                        max_value=q.max_late_rate),
    ]
    return {"accepted_transactions": accepted, "aggregates": aggregates, "run_rates": rates}


def docs_index(cfg) -> Path:
    return cfg.paths.data_dir / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def failing(summary: dict) -> list[str]:
    """The suites a run's summary reports as failing, by name."""
    return sorted(k for k, v in summary["quality"].items() if not v["success"])


def validate(cfg, frames: dict) -> dict:
    """Run the three suites over Spark DataFrames (by suite name); refresh Data Docs.
    Returns {suite: {"success": bool, "evaluated": n, "failed": [expectation types]}}."""
    # deferred: seconds to import, only a run's suites need it
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="file", project_root_dir=str(cfg.paths.data_dir))
    # a batch job's log is read later: no progress bars in it
    context.variables.progress_bars = ProgressBarsConfig(globally=False,
                                                         metric_calculations=False)
    try:
        source = context.data_sources.get("reconciliation")
    except (KeyError, ValueError):
        source = context.data_sources.add_spark("reconciliation")
    results = {}
    for name, expectations in suite_expectations(cfg).items():
        suite = gx.ExpectationSuite(name=name, expectations=expectations)
        suite = context.suites.add_or_update(suite)
        try:
            asset = source.get_asset(name)
        except LookupError:
            asset = source.add_dataframe_asset(name)
        try:
            batch = asset.get_batch_definition("whole")
        except KeyError:
            batch = asset.add_batch_definition_whole_dataframe("whole")
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch, suite=suite))
        outcome = definition.run(batch_parameters={"dataframe": frames[name]},
                                 result_format="SUMMARY")
        results[name] = {
            "success": bool(outcome.success),
            "evaluated": len(outcome.results),
            "failed": sorted(r.expectation_config.type for r in outcome.results
                             if not r.success),
        }
    context.build_data_docs()
    return results
