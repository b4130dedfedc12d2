"""Great Expectations suites, as code, over what a reconciliation recomputed; results in Data
Docs (HTML, opened from disk).

Three suites:

* ``accepted_transactions``: the recomputed accepted transactions: every field of
  docs/contract.md#fields present, amounts and event times in the contract's ranges,
  currency / kind / channel in their allow-lists, country two capital letters, ``txn_id``
  unique;
* ``aggregates``: the batch aggregates: ``net_cents = purchase_cents - refund_cents``,
  ``txn_count = purchase_count + refund_count``, windows aligned to ``event_time.window_ms``;
* ``run_rates``: the run's DLQ, duplicate and late rates under ``[quality]`` thresholds.

The file data context lives in ``<data_dir>/gx`` (written on first use; the suites are rebuilt
from this module on every run, so the code is their only definition). Each suite runs through a
Checkpoint of its own (a data frame batch is given per run, one per suite), all under one run
name: the interval (``2026-12-01T10:00:00Z--2026-12-01T10:05:00Z``). Data Docs, which open from
disk offline and keep the pages of the last ``batch.data_docs_keep_runs`` runs
(jobs/batch/data_docs.py): ``<data_dir>/gx/uncommitted/data_docs/local_site/index.html``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from jobs.batch import data_docs
from runtime import times
from udfs import contract

# the data each suite checks, as GX data assets (the name its pages show)
ASSETS = {"accepted_transactions": "recomputed_accepted_transactions",
          "aggregates": "recomputed_window_aggregates",
          "run_rates": "reconciliation_run_rates"}


def _limit(value: float) -> float:
    """A threshold as GX shows it: 0.3, not 0.30000000000000004."""
    return round(value, 6)


def suite_expectations(cfg) -> dict[str, list]:
    import great_expectations as gx  # deferred: seconds to import, only a run's suites need it

    E = gx.expectations
    c = cfg.contract
    accepted = [E.ExpectColumnValuesToNotBeNull(column=n) for n in contract.FIELD_NAMES]
    accepted += [
        E.ExpectColumnValuesToBeBetween(
            column="amount_cents", min_value=c.min_amount_cents, max_value=c.max_amount_cents,
            notes=f"In the currency's minor unit: {c.min_amount_cents:,} to "
                  f"{c.max_amount_cents:,}."),
        E.ExpectColumnValuesToBeBetween(
            column="event_time_ms", min_value=c.min_event_time_ms,
            max_value=c.max_event_time_ms - 1,
            notes=f"Epoch milliseconds: from {times.iso(c.min_event_time_ms)} to before "
                  f"{times.iso(c.max_event_time_ms)}."),
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
                                        max_value=_limit(q.max_dlq_rate)),
        E.ExpectColumnValuesToBeBetween(column="duplicate_rate", min_value=0,
                                        max_value=_limit(q.max_duplicate_rate)),
        E.ExpectColumnValuesToBeBetween(column="late_rate", min_value=0,
                                        max_value=_limit(q.max_late_rate)),
    ]
    return {"accepted_transactions": accepted, "aggregates": aggregates, "run_rates": rates}


def gx_root(cfg) -> Path:
    return cfg.paths.data_dir / "gx"


def docs_index(cfg) -> Path:
    return data_docs.site_dir(gx_root(cfg)) / "index.html"


def failing(summary: dict) -> list[str]:
    """The suites a run's summary reports as failing, by name."""
    return sorted(k for k, v in summary["quality"].items() if not v["success"])


def validate(cfg, frames: dict, run_name: str) -> tuple[dict, dict[str, Path]]:
    """Run the three suites over Spark DataFrames (by suite name) under ``run_name``, replacing
    an earlier run of that name; prune and refresh Data Docs. Returns ({suite: {"success": bool,
    "evaluated": n, "failed": [expectation types]}}, {suite: its validation page})."""
    # deferred: seconds to import, only a run's suites need it
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
    )

    root = gx_root(cfg)
    context = gx.get_context(mode="file", project_root_dir=str(cfg.paths.data_dir))
    # a batch job's log is read later: no progress bars in it
    context.variables.progress_bars = ProgressBarsConfig(globally=False,
                                                         metric_calculations=False)
    if data_docs.SITE_NAME in context.list_data_docs_sites():
        context.update_data_docs_site(data_docs.SITE_NAME, data_docs.SITE_CONFIG)
    else:
        context.add_data_docs_site(data_docs.SITE_NAME, data_docs.SITE_CONFIG)
    try:
        source = context.data_sources.get("reconciliation")
    except (KeyError, ValueError):
        source = context.data_sources.add_spark("reconciliation")
    data_docs.remove_runs(root, [run_name])
    run_id = RunIdentifier(run_name=run_name, run_time=datetime.now(UTC))
    results, pages, rendered = {}, {}, []
    for name, expectations in suite_expectations(cfg).items():
        suite = gx.ExpectationSuite(name=name, expectations=expectations)
        suite = context.suites.add_or_update(suite)
        try:
            asset = source.get_asset(ASSETS[name])
        except LookupError:
            asset = source.add_dataframe_asset(ASSETS[name])
        try:
            batch = asset.get_batch_definition("whole")
        except KeyError:
            batch = asset.add_batch_definition_whole_dataframe("whole")
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=name, data=batch, suite=suite))
        checkpoint = context.checkpoints.add_or_update(gx.Checkpoint(
            name=f"reconciliation.{name}", validation_definitions=[definition],
            result_format="SUMMARY"))
        run = checkpoint.run(batch_parameters={"dataframe": frames[name]}, run_id=run_id)
        ((identifier, outcome),) = run.run_results.items()
        results[name] = {
            "success": bool(outcome.success),
            "evaluated": len(outcome.results),
            "failed": sorted(r.expectation_config.type for r in outcome.results
                             if not r.success),
        }
        pages[name] = data_docs.page_path(root, identifier.to_tuple())
        rendered += [identifier, ExpectationSuiteIdentifier(name=name)]
    data_docs.prune(root, cfg.batch.data_docs_keep_runs)
    # this run's pages and the index (from the results kept); earlier runs' pages stay as built
    context.build_data_docs(resource_identifiers=rendered)
    data_docs.localise(data_docs.site_dir(root))
    return results, pages
