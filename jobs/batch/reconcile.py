"""Reconciliation: recompute an event-time interval from the raw log with the shared core and
compare it with what the streaming layer committed (docs/contract.md).

For the windows whose start lies in [--start, --end):

1. reads the raw log (docs/contract.md#raw-log) of ``payments.transactions`` and
   ``payments.accounts``, by arrival hour from ``start - batch.lookback_ms`` (earlier copies of
   a txn_id: the dedup horizon) to ``end + batch.lookahead_ms`` (late arrivals);
2. recomputes with ``udfs/``: validation and error classes (``udfs.contract.validate``, over
   Arrow batches with ``udfs.contract.validate_arrow``), dedup in
   (partition, offset) order (``udfs.semantics.dedup_decision``, as its SQL
   ``dedup_decision_sql``), the windows, and the fraud
   rules' alerts (``udfs.fraud.alerts_of``) of the accepted transactions the stream did not
   route to late, continuing from the rule state the previous interval's run left
   (``rule_state/at=<start>.parquet``; without it, replaying ``batch.lookback_ms`` first);
3. reads what the stream committed, as archived: ``payments.account-aggregates``,
   ``payments.late-transactions``, ``payments.dlq``, ``payments.alerts``;
4. classifies every aggregate key and window, every alert by ``alert_id`` and the DLQ count of
   every error class (``udfs.reconcile``), and checks the accounting identity
   raw records = accepted + duplicates + DLQ;
5. writes Parquet under ``<data_dir>/reconciliation/interval=<start>_<end>/`` (replaced when
   the same interval runs again), ``mismatches.csv`` and ``summary.json``, runs the Great
   Expectations suites (Data Docs) and the drift checks, writes the analyst report
   ``<reports_dir>/<start>_<end>/index.html`` (ISO times, jobs/batch/report.py); exits 1 when
   anything is unexplained.

The steps live in jobs/batch/: ``recompute.py`` (1-2: the lake, validation, dedup, the window
aggregate), ``alerts.py`` (the rules' replay and the alert classes), ``drift.py`` (the metrics
history and its checks), ``quality.py`` (the suites), ``report.py`` (the analyst report) and
``spark.py`` (the session), ``aggregates.py`` (the aggregate pairs and their classes);
this module reads the stream's side, counts, summarises, writes and runs the steps.

    SPARK_HOME=.venv/lib/python3.11/site-packages/pyspark PYSPARK_PYTHON=.venv/bin/python \\
    .venv/lib/python3.11/site-packages/pyspark/bin/spark-submit --master 'local[*]' \\
        jobs/batch/reconcile.py --start 2026-01-01T00:00:00Z --end 2026-01-01T01:00:00Z \\
        [--conf FILE] [--set section.key=value]

(``payline reconcile --start ... --end ...`` runs the same ``main``.) On a cluster, ship the
code with ``--py-files``: ``payline package-batch`` writes ``dist/payline-batch.zip``
(``payline/``, ``udfs/``, ``jobs/`` and the default configuration); relative paths in the
configuration are then relative to the driver's working directory, so give the cluster's lake
as an absolute ``paths.data_dir`` (``--conf`` or ``--set``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# spark-submit runs this file as a script: from a checkout, the packages are next to it; on a
# cluster they come in the --py-files zip (`payline package-batch`)
if (ROOT / "udfs").is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pyspark.sql import functions as F  # noqa: E402

from jobs.batch import aggregates, alerts, drift, formats, mismatches, quality  # noqa: E402
from jobs.batch import recompute as batch_side  # noqa: E402
from jobs.batch import report as analyst_report  # noqa: E402

# also reconcile.<name> for the operator tool, the tests and the benchmark: groups_across_batches,
# dedup, validated, BATCH_JAVA_OPTIONS, spark_session, UsageError
from jobs.batch.alerts import groups_across_batches  # noqa: E402,F401
from jobs.batch.recompute import between, dedup, read_raw, validated  # noqa: E402,F401
from jobs.batch.spark import BATCH_JAVA_OPTIONS, spark_session  # noqa: E402,F401
from runtime import config as config_mod  # noqa: E402
from runtime import progress, times  # noqa: E402
from runtime.errors import UsageError  # noqa: E402
from runtime.times import interval  # noqa: E402
from udfs import contract, fraud, reconcile, semantics  # noqa: E402

# --- arguments ------------------------------------------------------------------------------------


def parse_instant(name: str, text: str) -> int:
    """Epoch ms from ISO 8601 (UTC when no offset is given) or from epoch ms digits."""
    if text.isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"{name}: not an ISO 8601 time or epoch ms: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="reconcile", description=__doc__.split("\n")[0])
    p.add_argument("--start", required=True, help="first window start (ISO 8601 or epoch ms)")
    p.add_argument("--end", required=True, help="end of the interval, exclusive")
    p.add_argument("--conf")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--master", default=None, help="Spark master (default: local[*] unless "
                                                  "spark-submit sets one)")
    return p.parse_args(argv)


def interval_of(args, cfg) -> tuple[int, int]:
    start, end = parse_instant("--start", args.start), parse_instant("--end", args.end)
    w = cfg.event_time.window_ms
    if start % w or end % w:
        raise UsageError(f"--start/--end: must be aligned to event_time.window_ms ({w} ms)")
    if end <= start:
        raise UsageError("--end: must be after --start")
    return start, end


# --- the steps of a run ---------------------------------------------------------------------------


def recompute(spark, cfg, start_ms: int, end_ms: int, replay_from: int) -> dict:
    """The batch side of [start_ms, end_ms) from the lake (jobs.batch.recompute.recompute over
    the raw transactions of the arrival hours it needs: from the dedup look-back or
    ``replay_from``, whichever is earlier, to the late arrivals' look-ahead)."""
    t = cfg.topics
    hours = batch_side.raw_hours(min(start_ms - cfg.batch.lookback_ms, replay_from),
                                 end_ms + cfg.batch.lookahead_ms)
    raw = read_raw(spark, cfg, t.transactions, hours)
    if raw is None:
        raise UsageError(f"no raw log of {t.transactions} under {cfg.paths.raw_dir}")
    return batch_side.recompute(raw, cfg, start_ms, end_ms, replay_from)


def stream_side(spark, cfg, start_ms: int, end_ms: int) -> dict:
    """What the stream committed, as archived (lazily): its aggregates of the interval's
    windows (``aggregates``), its late transactions (``late_all``; ``late``: of the interval's
    windows), its DLQ records (``dlq``) and its alerts (``alerts``)."""
    t = cfg.topics

    def stream_json(topic, schema):
        df = read_raw(spark, cfg, topic, None)
        if df is None:
            return spark.createDataFrame([], schema)
        return df.select(F.from_json(F.col("value").cast("string"), schema).alias("j")) \
                 .select("j.*")

    agg_schema = ", ".join(f"{f} {typ.upper()}" for f, typ in aggregates.AGGREGATE_TYPES)
    late_schema = (", ".join(f"{n} {'LONG' if n in contract.INT_FIELDS else 'STRING'}"
                             for n in contract.FIELD_NAMES)
                   + ", watermark_ms LONG, window_start_ms LONG")
    late_all = stream_json(t.late, late_schema)
    return {
        "aggregates": stream_json(t.aggregates, agg_schema).where(
            between(F.col("window_start_ms"), start_ms, end_ms)),
        "late_all": late_all,
        "late": late_all.where(between(F.col("window_start_ms"), start_ms, end_ms)),
        "dlq": stream_json(t.dlq, "error_class STRING, source_topic STRING, "
                                  "source_partition INT, source_offset LONG"),
        "alerts": stream_json(t.alerts, "alert_id STRING, rule STRING, account_id STRING, "
                                        "event_time_ms LONG, details STRUCT<"
                                        f"{fraud.BEHIND_KEY}: ARRAY<STRING>>"),
    }


def dlq_counts(cfg, deduped, invalid, stream_dlq) -> tuple[list[tuple], Counter, Counter]:
    """The DLQ count of every error class on each side, over the raw records in scope, and
    its class: ([(error_class, stream, batch, class)], the batch's count per error class, the
    count of every outcome in scope)."""
    scope = (deduped.select("partition", "offset", "outcome")
             .unionByName(invalid.select("partition", "offset",
                                         F.col("error_class").alias("outcome"))))
    batch_dlq = scope.where(~F.col("outcome").isin(semantics.ACCEPTED, semantics.DUPLICATE))
    stream_dlq = (stream_dlq.where(F.col("source_topic") == cfg.topics.transactions)
                  .join(scope.select(F.col("partition").alias("source_partition"),
                                     F.col("offset").alias("source_offset")),
                        ["source_partition", "source_offset"]))
    batch_counts = Counter(dict(batch_dlq.groupBy("outcome").count().collect()))
    stream_counts = Counter(dict(stream_dlq.groupBy("error_class").count().collect()))
    rows = [(cls, stream_counts.get(cls, 0), batch_counts.get(cls, 0),
             reconcile.classify_count(stream_counts.get(cls, 0), batch_counts.get(cls, 0)))
            for cls in contract.ERROR_CLASSES]
    outcomes = Counter(dict(scope.groupBy("outcome").count().collect()))
    return rows, batch_counts, outcomes


def summarise(start_ms: int, end_ms: int, pairs, alerts_df, dlq_rows, outcomes: Counter,
              late_n: int, states_in, replay_from: int) -> dict:
    """The run's summary.json (before the quality, drift and metrics keys ``run`` adds)."""
    raw_in_scope = sum(outcomes.values())
    accepted_n = outcomes.get(semantics.ACCEPTED, 0)
    duplicates_n = outcomes.get(semantics.DUPLICATE, 0)
    dlq_n = raw_in_scope - accepted_n - duplicates_n
    agg_classes = Counter(dict(pairs.groupBy("reconciliation_class").count().collect()))
    alert_classes = Counter(dict(alerts_df.groupBy("reconciliation_class").count().collect()))
    unexplained = (sum(agg_classes.get(c, 0) for c in reconcile.UNEXPLAINED)
                   + sum(alert_classes.get(c, 0) for c in reconcile.UNEXPLAINED)
                   + sum(1 for row in dlq_rows if row[3] != reconcile.MATCH))
    keys = sum(agg_classes.values())
    summary = {
        "interval": {"start_ms": start_ms, "end_ms": end_ms},
        "aggregates": dict(sorted(agg_classes.items())),
        "alerts": dict(sorted(alert_classes.items())),
        "dlq": {cls: {"stream": s_, "batch": b_, "class": c}
                for cls, s_, b_, c in dlq_rows},
        "accounting": {"raw_records": raw_in_scope, "accepted": accepted_n,
                       "duplicates": duplicates_n, "dlq": dlq_n,
                       "holds": raw_in_scope == accepted_n + duplicates_n + dlq_n},
        "matched_pct": round(100.0 * agg_classes.get(reconcile.MATCH, 0) / keys, 3)
        if keys else None,
        "unexplained": unexplained,
        "alert_state": {"continued_from_snapshot": states_in is not None,
                        "replayed_from_ms": replay_from},
    }
    summary["rates"] = {
        "dlq_rate": dlq_n / raw_in_scope if raw_in_scope else 0.0,
        "duplicate_rate": duplicates_n / raw_in_scope if raw_in_scope else 0.0,
        "late_rate": late_n / accepted_n if accepted_n else 0.0,
    }
    return summary


def run_metrics(accepted, raw_n: int, accepted_n: int, dlq_counts: Counter, rates: dict,
                unexplained: int, keys: int) -> dict:
    """What the drift checks compare from run to run (jobs/batch/drift.py)."""
    def mix(column):
        return {r[0]: r[1] for r in accepted.groupBy(column).count().collect()}

    quantiles = {r[0]: [float(x) for x in r[1]] for r in accepted.groupBy("currency").agg(
        F.percentile_approx("amount_cents", list(drift.QUANTILES), 10_000)).collect()}
    all_rates = {f"dlq.{cls}": (dlq_counts.get(cls, 0) / raw_n if raw_n else 0.0)
                 for cls in contract.ERROR_CLASSES}
    all_rates |= {"duplicate": rates["duplicate_rate"], "late": rates["late_rate"],
                  "unexplained": unexplained / keys if keys else 0.0}
    return {"raw_records": raw_n, "accepted": accepted_n, "currency_mix": mix("currency"),
            "channel_mix": mix("channel"), "country_mix": mix("country"),
            "amount_quantiles": quantiles, "rates": all_rates}


def quality_frames(spark, accepted, batch_aggs, rates: dict, window_ms: int) -> dict:
    """The frames the Great Expectations suites check (jobs/batch/quality.py), by suite."""
    return {
        "accepted_transactions": accepted.select(*contract.FIELD_NAMES),
        "aggregates": batch_aggs.select(
            "*", (F.col("purchase_cents") - F.col("refund_cents"))
            .alias("purchase_minus_refund_cents"),
            (F.col("purchase_count") + F.col("refund_count")).alias("purchase_plus_refund_count"),
            (F.col("window_start_ms") % window_ms).alias("window_offset_ms"),
            (F.col("window_end_ms") - F.col("window_start_ms")).alias("window_length_ms")),
        "run_rates": spark.createDataFrame([tuple(rates.values())],
                                           "dlq_rate DOUBLE, duplicate_rate DOUBLE, "
                                           "late_rate DOUBLE"),
    }


# the phases a run shows on a terminal (runtime.progress)
STEPS = 7


def build(spark, cfg, start_ms: int, end_ms: int) -> dict:
    """DataFrames of the reconciliation (aggregates, alerts, dlq) and the summary dict."""
    w = cfg.event_time.window_ms
    # the fraud rules' state carries over from interval to interval: continue from the state
    # the run of the previous interval left, or, with none, replay the look-back before start
    states_in = alerts.read_rule_state(cfg, start_ms)
    replay_from = start_ms if states_in is not None else start_ms - cfg.batch.lookback_ms
    progress.step(1, STEPS, "recomputing from the raw log")
    batch = recompute(spark, cfg, start_ms, end_ms, replay_from)
    stream = stream_side(spark, cfg, start_ms, end_ms)
    progress.step(2, STEPS, "classifying the window aggregates")

    pairs = aggregates.classified_pairs(batch["batch_aggs"], batch["deduped"],
                                        stream["aggregates"], stream["late"], w)
    progress.step(3, STEPS, "replaying the fraud rules")
    replayed, states_out = alerts.replay(spark, cfg, batch["wide"], stream["late_all"],
                                         stream["alerts"], states_in, start_ms, end_ms)
    alerts_df = alerts.classify(spark, cfg, replayed, stream["alerts"], batch["wide"],
                                stream["late_all"], start_ms, end_ms)
    progress.step(4, STEPS, "counting the DLQ, checking the accounting")
    dlq_rows, batch_counts, outcomes = dlq_counts(cfg, batch["deduped"], batch["invalid"],
                                                  stream["dlq"])

    summary = summarise(start_ms, end_ms, pairs, alerts_df, dlq_rows, outcomes,
                        stream["late"].count(), states_in, replay_from)
    summary["metrics"] = run_metrics(
        batch["accepted"], summary["accounting"]["raw_records"],
        summary["accounting"]["accepted"], batch_counts, summary["rates"],
        summary["unexplained"], sum(summary["aggregates"].values()))
    return {"aggregates": pairs, "alerts": alerts_df,
            "quality_frames": quality_frames(spark, batch["accepted"], batch["batch_aggs"],
                                             summary["rates"], w),
            "dlq": spark.createDataFrame(dlq_rows, "error_class STRING, stream LONG, "
                                                   "batch LONG, reconciliation_class STRING"),
            "summary": summary, "rule_state": states_out}


def write(results: dict, out_dir: Path) -> None:
    """Replace the interval's result folder as a whole: one Parquet file per table with a
    fixed name, rows sorted, ``mismatches.csv`` (jobs/batch/mismatches.py) and
    ``summary.json``, so a re-run of the interval gives the same files."""
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    sorts = {"aggregates": ["account_id", "currency", "window_start_ms"],
             "alerts": ["alert_id"], "dlq": ["error_class"]}
    for name, sort in sorts.items():
        spark_dir = tmp / f"_{name}"
        results[name].orderBy(*sort).coalesce(1).write.parquet(str(spark_dir))
        (part,) = spark_dir.glob("part-*.parquet")
        part.rename(tmp / f"{name}.parquet")
        shutil.rmtree(spark_dir)
    mismatches.write_csv(mismatches.frame(results["aggregates"], results["alerts"],
                                          results["dlq"]), tmp / "mismatches.csv")
    (tmp / "summary.json").write_text(json.dumps(results["summary"], indent=2,
                                                 sort_keys=True) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


# --- the job --------------------------------------------------------------------------------------


def run(cfg, start_ms: int, end_ms: int, spark, timings: dict | None = None) -> dict:
    """The whole run; ``timings`` (if given) gets the seconds of each phase: "reconcile"
    (recompute, classification, result files), "quality" (suites and drift), "report"."""
    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    results = build(spark, cfg, start_ms, end_ms)
    t1 = time.perf_counter()
    # data quality is reported (summary, Data Docs), it does not decide the exit code
    progress.step(5, STEPS, "the data-quality suites and the drift checks")
    results["summary"]["quality"], results["data_docs_pages"] = quality.validate(
        cfg, results["quality_frames"], formats.run_name(start_ms, end_ms))
    results["summary"]["data_docs"] = str(quality.docs_index(cfg))
    checks = drift.check_drift(cfg, start_ms, end_ms, results["summary"]["metrics"])
    results["summary"]["drift"] = checks
    results["summary"]["drift_flags"] = sorted(k for k, v in checks.items() if v["drifted"])
    t2 = time.perf_counter()
    progress.step(6, STEPS, "writing the results")
    out_dir = (cfg.paths.data_dir / "reconciliation"
               / f"interval={times.interval_for_path(start_ms, end_ms)}")
    write(results, out_dir)
    alerts.write_rule_state(cfg, end_ms, results["rule_state"])
    results["out_dir"] = out_dir
    t3 = time.perf_counter()
    progress.step(7, STEPS, "writing the analyst report")
    results["report"] = analyst_report.write(spark, cfg, results)
    timings.update(reconcile=(t1 - t0) + (t3 - t2), quality=t2 - t1,
                   report=time.perf_counter() - t3)
    return results


def main(argv=None) -> int:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    try:
        cfg = config_mod.load(args.conf, args.set)
        start_ms, end_ms = interval_of(args, cfg)
        results = run_once(cfg, start_ms, end_ms, args.master)
    except (UsageError, config_mod.ConfigError) as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 2
    report(results)
    return exit_code(results["summary"])


def run_once(cfg, start_ms: int, end_ms: int, master: str | None = None) -> dict:
    """:func:`run` in a SparkSession of its own (``master``, default local), stopped after."""
    spark = spark_session(master)
    try:
        return run(cfg, start_ms, end_ms, spark)
    finally:
        spark.stop()


def exit_code(summary: dict) -> int:
    return 1 if summary["unexplained"] or not summary["accounting"]["holds"] else 0


def result_document(results: dict) -> dict:
    """The run's result for scripts (``payline reconcile --json``): the summary and where the
    results and the report are."""
    return {**results["summary"], "results": str(results["out_dir"]),
            "report": str(results["report"])}


def report(results: dict) -> None:
    """The run's lines for the operator."""
    s = results["summary"]
    start_ms, end_ms = s["interval"]["start_ms"], s["interval"]["end_ms"]
    failed = quality.failing(s)
    print(f"reconciled {interval(start_ms, end_ms)}: aggregates {s['aggregates']}, alerts "
          f"{s['alerts']}, accounting {'holds' if s['accounting']['holds'] else 'BROKEN'}; "
          f"unexplained {s['unexplained']}; results {results['out_dir']}")
    print(f"data quality: {'suites failing: ' + ', '.join(failed) if failed else 'all suites pass'}"
          f"; Data Docs {s['data_docs']}")
    flags = s["drift_flags"]
    print("drift: " + ("no baseline yet" if not s["drift"] else
                       "flagged " + ", ".join(flags) if flags else "none against the baseline"))
    print(f"report: {results['report']}")


if __name__ == "__main__":
    sys.exit(main())
