"""Reconciliation: recompute an event-time interval from the raw log with the shared core and
compare it with what the streaming layer committed (CONTRACT.md §3-§7).

For the windows whose start lies in [--start, --end):

1. reads the raw log (§6) of ``payments.transactions`` and ``payments.accounts``, by arrival
   hour from ``start - batch.lookback_ms`` (earlier copies of a txn_id: the dedup horizon) to
   ``end + batch.lookahead_ms`` (late arrivals);
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
   the same interval runs again) and ``summary.json``, runs the Great Expectations suites
   (Data Docs) and the drift checks, writes the analyst report
   ``<reports_dir>/<run>/index.html`` (jobs/batch/report.py); exits 1 when anything is
   unexplained.

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
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
# spark-submit runs this file as a script: from a checkout, the packages are next to it; on a
# cluster they come in the --py-files zip (payline/pyfiles.py)
if (ROOT / "udfs").is_dir() and str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from payline import config as config_mod  # noqa: E402
from udfs import contract, fraud, reconcile, semantics  # noqa: E402

TXN_COLUMNS = ("error_class", "error") + contract.FIELD_NAMES
SPARK_TXN_SCHEMA = (
    "partition INT, offset LONG, timestamp_ms LONG, error_class STRING, error STRING, "
    "txn_id STRING, account_id STRING, merchant_id STRING, amount_cents LONG, "
    "currency STRING, kind STRING, event_time_ms LONG, channel STRING, country STRING")


class UsageError(ValueError):
    """A bad argument; its message is one line naming it."""


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


# --- per-partition functions (run on the executors; pure udfs/ inside) ---------------------------


def validate_batches(rules):
    """Over Arrow batches of raw records: ``udfs.contract.validate_arrow`` (the common valid
    shape vectorised, every other record through ``validate``), with each record's position."""
    def run(batches):
        import pyarrow as pa

        for batch in batches:
            checked = contract.validate_arrow(batch.column("value"), rules)
            source = pa.Table.from_batches([batch]).select(
                ["partition", "offset", "timestamp_ms"]).take(checked.column("row"))
            out = pa.Table.from_arrays(
                source.columns + checked.drop_columns(["row"]).columns,
                names=source.column_names + list(TXN_COLUMNS))
            yield from out.to_batches()
    return run


def groups_across_batches(frames, column: str):
    """(value, rows) per run of equal ``column`` values in frames sorted by it; a run may
    span Arrow batches."""
    current, rows = None, []
    for df in frames:
        names = list(df.columns)
        # column by column: DataFrame.to_dict("records") boxes value by value, about 3x slower
        for values in zip(*(df[n].tolist() for n in names), strict=True):
            r = dict(zip(names, values, strict=True))
            if rows and r[column] != current:
                yield current, rows
                rows = []
            current = r[column]
            rows.append(r)
    if rows:
        yield current, rows


ALERT_OUTPUT = ("kind STRING, alert_id STRING, rule STRING, account_id STRING, "
                "txn_ids STRING, event_time_ms LONG, state STRING")


def alerts_sorted(profiles: dict, params: fraud.FraudParams, states: dict[str, str],
                  end_ms: int, stream_velocity: frozenset = frozenset()):
    """Over accepted on-time rows sorted by account: every alert (udfs.fraud.alerts_of),
    continuing from the account's rule state at the start (``states``: JSON by account), and
    the account's rule state at ``end_ms`` (rows of kind "state"). Rows of kind "silenced":
    the VELOCITY alerts of ``stream_velocity`` (alert_ids the stream raised) that the batch
    computed too but held back by its silence only."""
    columns = ["kind", "alert_id", "rule", "account_id", "txn_ids", "event_time_ms", "state"]

    def run(frames):
        out = []
        for account, txns in groups_across_batches(frames, "account_id"):
            start = states.get(account)
            state = fraud.state_from_json(start) if start else fraud.RuleState()
            silenced = []
            for a in fraud.alerts_of(txns, {account: profiles.get(account, {})}, params,
                                     {account: state}, silenced):
                out.append(("alert", a.alert_id, a.rule, a.account_id, ",".join(a.txn_ids),
                            int(a.event_time_ms), None))
            out.extend(("silenced", a.alert_id, a.rule, a.account_id, None,
                        int(a.event_time_ms), None)
                       for a in silenced if a.alert_id in stream_velocity)
            at_end = state_at(state, end_ms, params)
            if at_end is not None:
                out.append(("state", None, None, account, None, None, at_end))
            if len(out) >= 10_000:
                yield pd.DataFrame(out, columns=columns)
                out = []
        yield pd.DataFrame(out, columns=columns)
    return run


def state_at(state: fraud.RuleState, end_ms: int, params: fraud.FraudParams) -> str | None:
    """An account's rule state as the next interval (from ``end_ms``) needs it, as JSON; None
    when nothing is left."""
    fraud.expire(state, end_ms, 0, params)
    return None if state.is_empty() else fraud.state_to_json(state)


def rule_state_path(cfg, at_ms: int) -> Path:
    """The batch's fraud-rule state per account at an interval boundary: written by the run
    that ends there, read by the run that starts there."""
    return cfg.paths.data_dir / "reconciliation" / "rule_state" / f"at={at_ms}.parquet"


def read_rule_state(cfg, at_ms: int) -> dict[str, str] | None:
    import pyarrow.parquet as pq

    path = rule_state_path(cfg, at_ms)
    if not path.is_file():
        return None
    table = pq.read_table(path)
    return dict(zip(table.column("account_id").to_pylist(), table.column("state").to_pylist(),
                    strict=True))


def write_rule_state(cfg, at_ms: int, states: dict[str, str]) -> None:
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = rule_state_path(cfg, at_ms)
    path.parent.mkdir(parents=True, exist_ok=True)
    accounts = sorted(states)
    tmp = path.with_name("." + path.name)
    pq.write_table(pa.table({"account_id": pa.array(accounts, pa.string()),
                             "state": pa.array([states[a] for a in accounts], pa.string())}),
                   tmp, compression="zstd")
    os.replace(tmp, path)


# an aggregate as aggregates.parquet holds each side of it: a struct of these typed fields
AGGREGATE_TYPES = tuple((f, "string" if f in ("account_id", "currency") else "bigint")
                        for f in semantics.AGGREGATE_FIELDS)


# what the silence chain needs of a classified alert (udfs.reconcile.follow_velocity_silence)
CHAIN_FIELDS = ["alert_id", "account_id", "event_time_ms", "in_stream", "in_batch",
                "reconciliation_class"]


def follow_velocity_silence(spark, cfg, alerts, replayed, start_ms: int):
    """``alerts`` with the VELOCITY differences that follow through the silence from an
    explained one (udfs.reconcile.follow_velocity_silence) classed as that one. The chain may
    start in the previous interval: its run's classes are read from its results."""
    from pyspark.sql import functions as F

    velocity = alerts.where(F.col("rule") == fraud.VELOCITY)
    accounts = [r[0] for r in velocity.where(
        F.col("reconciliation_class").isin(*reconcile.UNEXPLAINED))
        .select("account_id").distinct().collect()]
    if not accounts:
        return alerts
    silenced = {r[0] for r in replayed.where(F.col("kind") == "silenced")
                .where(F.col("account_id").isin(accounts)).select("alert_id").collect()}
    by_account: dict[str, list[dict]] = {}
    for r in velocity.where(F.col("account_id").isin(accounts)).select(*CHAIN_FIELDS).collect():
        by_account.setdefault(r["account_id"], []).append(
            {**r.asDict(), "silenced": r["alert_id"] in silenced})
    for r in previous_velocity_alerts(cfg, start_ms, accounts):
        by_account.setdefault(r["account_id"], []).append({**r, "silenced": False})
    silence_ms = cfg.fraud.params().velocity_silence_ms
    found = {}
    for rows in by_account.values():
        found.update(reconcile.follow_velocity_silence(rows, silence_ms))
    if not found:
        return alerts
    chained = spark.createDataFrame(list(found.items()),
                                    "alert_id STRING, chained_class STRING")
    return (alerts.join(F.broadcast(chained), "alert_id", "left")
            .withColumn("reconciliation_class",
                        F.coalesce("chained_class", "reconciliation_class"))
            .drop("chained_class"))


def previous_velocity_alerts(cfg, start_ms: int, accounts: list[str]) -> list[dict]:
    """The VELOCITY alerts of ``accounts`` as the run of the interval that ended at
    ``start_ms`` classed them (none when that run left no results)."""
    import pyarrow.dataset as ds

    root = cfg.paths.data_dir / "reconciliation"
    paths = [p / "alerts.parquet" for p in root.glob(f"interval=*_{start_ms}")
             if (p / "alerts.parquet").is_file()]
    if not paths:
        return []
    table = ds.dataset(paths, format="parquet").to_table(
        columns=CHAIN_FIELDS, filter=(ds.field("rule") == fraud.VELOCITY)
        & ds.field("account_id").isin(accounts))
    return table.to_pylist()


def classify_batches(window_ms: int):
    """Over Arrow batches of aggregate pairs (``stream``, ``batch``: structs of
    AGGREGATE_TYPES or null; ``late``: the stream's late transactions of the key and window):
    each pair's class by ``udfs.reconcile.classify_aggregate``."""
    def run(batches):
        import pyarrow as pa

        for batch in batches:
            classes = [reconcile.classify_aggregate(
                r["stream"], r["batch"], r["late"] or [], bool(r["order_dependent"]),
                (r["account_id"], r["currency"], r["window_start_ms"]), window_ms)
                for r in batch.to_pylist()]
            yield pa.RecordBatch.from_arrays(
                [*batch.columns, pa.array(classes, pa.string())],
                names=[*batch.schema.names, "reconciliation_class"])
    return run


# --- the job --------------------------------------------------------------------------------------


def raw_hours(start_ms: int, end_ms: int) -> list[tuple[str, str]]:
    hour = 3_600_000
    out = []
    t = start_ms - start_ms % hour
    while t < end_ms:
        dt = datetime.fromtimestamp(t / 1000, UTC)
        out.append((dt.strftime("%Y-%m-%d"), dt.strftime("%H")))
        t += hour
    return out


def read_raw(spark, cfg, topic: str, hours: list[tuple[str, str]] | None):
    """The archived records of ``topic`` (only the given arrival hours), or None."""
    from pyspark.sql import functions as F

    path = cfg.paths.raw_dir / topic
    if not path.exists():
        return None
    df = spark.read.parquet(str(path))
    if hours is not None:
        df = df.where(F.concat_ws("/", "date", "hour").isin([f"{d}/{h}" for d, h in hours]))
    return df.drop("date", "hour")


def window_start_of(column: str, window_ms: int):
    from pyspark.sql import functions as F

    return F.col(column) - F.col(column) % window_ms


def between(column, start_ms: int, end_ms: int):
    """start <= column < end."""
    return (column >= start_ms) & (column < end_ms)


def validated(raw, rules: contract.Rules):
    """The raw records with ``udfs.contract``'s verdict (SPARK_TXN_SCHEMA), over Arrow batches
    (``validate_batches``)."""
    return (raw.select("partition", "offset", "timestamp_ms", "value")
            .mapInArrow(validate_batches(rules), SPARK_TXN_SCHEMA))


def dedup(checked, horizon_ms: int):
    """``udfs.semantics.dedup_decision`` over the valid rows of ``checked`` (``validated``), as
    SQL (``dedup_decision_sql`` with ``same_fields_sql``): processing order is (partition,
    offset) within a txn_id. ``outcome``: the decision, or an invalid row's error class
    (invalid rows take no part: their txn_id is null). ``cross_partition``: a valid row whose
    txn_id's copies came on more than one partition, so which copy is first depends on how the
    stream interleaved the partitions (§3). One pass over valid and invalid rows alike, so the
    validation is read once."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    valid = F.col("error_class").isNull()
    # the invalid rows make one group (null txn_id), which the window spills if it is large;
    # spreading them by a second partition expression made the 10 M run 20 s slower, but
    # that was measured with the expression inside partitionBy, which each of the two windows
    # aliases anew, so the rows were shuffled twice (bench/RESULTS.md, session 24): a column
    # computed once before the windows would be the fair test
    ordered = Window.partitionBy("txn_id").orderBy("partition", "offset")
    whole = ordered.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    # the first copy's fields, compared field by field (same_fields_sql), instead of a
    # fingerprint string per record sorted along with it (10 M events, the dedup alone: 24 s
    # against 27-32 s, within the noise of a whole run)
    firsts = [F.first(n).over(ordered).alias(f"first_{n}") for n in contract.FIELD_NAMES]
    decision = semantics.dedup_decision_sql(horizon_ms, "copies", "first_event_time_ms",
                                            semantics.same_fields_sql("first_"))
    return (checked.select("*", F.row_number().over(ordered).alias("copies"), *firsts)
            .withColumn("cross_partition", valid & (
                F.min("partition").over(whole) != F.max("partition").over(whole)))
            .withColumn("outcome", F.coalesce(F.col("error_class"), F.expr(decision)))
            .drop("copies", *(f"first_{n}" for n in contract.FIELD_NAMES)))


def recompute(spark, cfg, start_ms: int, end_ms: int, replay_from: int) -> dict:
    """The batch side, lazily: the raw transactions validated and deduplicated, the valid ones
    with their windows from ``replay_from`` and the interval's invalid ones by arrival time
    (``wide``, cached), the valid ones within the interval (``deduped``), the invalid ones
    (``invalid``), the accepted transactions and their aggregates per key and window."""
    from pyspark.sql import functions as F

    w = cfg.event_time.window_ms
    t = cfg.topics
    hours = raw_hours(min(start_ms - cfg.batch.lookback_ms, replay_from),
                      end_ms + cfg.batch.lookahead_ms)
    raw = read_raw(spark, cfg, t.transactions, hours)
    if raw is None:
        raise UsageError(f"no raw log of {t.transactions} under {cfg.paths.raw_dir}")

    # validated and deduplicated in one pass, cached once (10 M events: 5 s less than caching
    # the validation too); the invalid rows keep their error class as the outcome
    checked = validated(raw, config_mod.contract_rules(cfg))
    decided = dedup(checked, cfg.contract.dedup_horizon_ms).withColumn(
        "window_start_ms", window_start_of("event_time_ms", w))
    # valid rows by their window, from replay_from; invalid ones (no event time) by arrival.
    # Cached without what nothing reads after this (arrival time, error message): 10 M events,
    # about 80 MB less cache; no time difference beyond the noise.
    # Cached by account_id: the per-key sums (whose partial aggregation reduces almost nothing)
    # and the rules' replay by account both find their rows in place: once the cache is built,
    # adaptive execution re-plans them without an exchange of their own (the initial plan
    # still shows one). One shuffle of the rows instead of two (10 M events: recompute +
    # reconcile 140-143 s -> 132-136 s, bench/RESULTS.md, session 28)
    wide = decided.where(F.when(F.col("error_class").isNull(), between(
        F.col("window_start_ms"), replay_from, end_ms)).otherwise(between(
            F.col("timestamp_ms"), start_ms, end_ms))).drop("timestamp_ms", "error") \
        .repartition("account_id").cache()
    deduped = wide.where(between(F.col("window_start_ms"), start_ms, end_ms))
    # batch aggregates: every accepted transaction, late ones included (the stream's late
    # records explain the difference)
    accepted = deduped.where(F.col("outcome") == semantics.ACCEPTED)
    batch_aggs = accepted.groupBy("account_id", "currency", "window_start_ms").agg(
        F.count("*").alias("txn_count"),
        F.sum(F.when(F.col("kind") == "purchase", 1).otherwise(0)).alias("purchase_count"),
        F.sum(F.when(F.col("kind") == "refund", 1).otherwise(0)).alias("refund_count"),
        F.sum(F.when(F.col("kind") == "purchase", F.col("amount_cents")).otherwise(0))
         .alias("purchase_cents"),
        F.sum(F.when(F.col("kind") == "refund", F.col("amount_cents")).otherwise(0))
         .alias("refund_cents"),
        F.max("amount_cents").alias("max_amount_cents"),
    ).withColumn("window_end_ms", F.col("window_start_ms") + w) \
     .withColumn("net_cents", F.col("purchase_cents") - F.col("refund_cents"))
    return {"wide": wide, "deduped": deduped, "accepted": accepted,
            "invalid": wide.where(F.col("error_class").isNotNull()),
            "batch_aggs": batch_aggs}


def build(spark, cfg, start_ms: int, end_ms: int) -> dict:
    """DataFrames of the reconciliation (aggregates, alerts, dlq) and the summary dict."""
    from pyspark.sql import functions as F

    w = cfg.event_time.window_ms
    t = cfg.topics

    def in_interval(column):
        return between(column, start_ms, end_ms)

    # the fraud rules' state carries over from interval to interval: continue from the state
    # the run of the previous interval left, or, with none, replay the look-back before start
    states_in = read_rule_state(cfg, start_ms)
    replay_from = start_ms if states_in is not None else start_ms - cfg.batch.lookback_ms
    batch = recompute(spark, cfg, start_ms, end_ms, replay_from)
    wide, deduped, invalid = batch["wide"], batch["deduped"], batch["invalid"]
    accepted, batch_aggs = batch["accepted"], batch["batch_aggs"]

    # the stream's committed outputs, as archived
    def stream_json(topic, schema):
        df = read_raw(spark, cfg, topic, None)
        if df is None:
            return spark.createDataFrame([], schema)
        return df.select(F.from_json(F.col("value").cast("string"), schema).alias("j")) \
                 .select("j.*")

    agg_schema = ", ".join(f"{f} {typ.upper()}" for f, typ in AGGREGATE_TYPES)
    late_schema = (", ".join(f"{n} {'LONG' if n in contract.INT_FIELDS else 'STRING'}"
                             for n in contract.FIELD_NAMES)
                   + ", watermark_ms LONG, window_start_ms LONG")
    stream_aggs = stream_json(t.aggregates, agg_schema).where(
        in_interval(F.col("window_start_ms")))
    late_all = stream_json(t.late, late_schema)
    late = late_all.where(in_interval(F.col("window_start_ms")))
    dlq = stream_json(t.dlq, "error_class STRING, source_topic STRING, "
                             "source_partition INT, source_offset LONG")
    stream_alerts = stream_json(t.alerts, "alert_id STRING, rule STRING, account_id STRING, "
                                          "event_time_ms LONG, details STRUCT<"
                                          f"{fraud.BEHIND_KEY}: ARRAY<STRING>>")

    key = ["account_id", "currency", "window_start_ms"]

    def as_struct(df, name):
        """The side's aggregate as one typed struct (AGGREGATE_TYPES) beside the key."""
        fields = (F.col(f).cast(typ).alias(f) for f, typ in AGGREGATE_TYPES)
        return df.select(*key, F.struct(*fields).alias(name))

    # the late transactions in txn_id order, so a re-run writes the same bytes
    late_by_key = late.groupBy(*key).agg(F.array_sort(F.collect_list(F.struct(
        *contract.FIELD_NAMES))).alias("late"))
    order_dependent = (deduped.where("cross_partition").select(*key).distinct()
                       .withColumn("order_dependent", F.lit(True)))
    pairs = (as_struct(batch_aggs, "batch")
             .join(as_struct(stream_aggs, "stream"), key, "full_outer")
             .join(late_by_key, key, "left")
             .join(order_dependent, key, "left")
             .fillna({"order_dependent": False}))
    # classify_aggregate's first rule (equal values: MATCH) runs in the JVM for the bulk of
    # the keys, whose two typed structs are equal; every other pair goes through the shared
    # function. The joined pairs are cached with the JVM's verdict, so the joins run once
    # (two branches over the uncached join ran them twice: 10 M events: 58 -> 46 s) and both
    # branches read the cache
    identical = F.coalesce(F.col("stream") == F.col("batch"), F.lit(False))
    judged = pairs.withColumn("reconciliation_class",
                              F.when(identical, F.lit(reconcile.MATCH))).cache()
    aggregates = judged.where(F.col("reconciliation_class").isNotNull()).unionByName(
        judged.where(F.col("reconciliation_class").isNull()).drop("reconciliation_class")
        .mapInArrow(classify_batches(w), judged.schema))

    # alerts: the batch replays the rules over the accepted transactions the stream did not
    # send to late (late ones take part in no rule)
    profiles = load_profiles(spark, cfg)
    params = cfg.fraud.params()
    late_ids = late_all.select("txn_id").distinct()
    on_time = (wide.where(F.col("outcome") == semantics.ACCEPTED)
               .join(late_ids, "txn_id", "left_anti"))
    alert_scope = in_interval(window_start_of("event_time_ms", w))  # the alert's window
    stream_velocity = frozenset(r[0] for r in stream_alerts.where(
        alert_scope & (F.col("rule") == fraud.VELOCITY)).select("alert_id").distinct().collect())
    # by account: over ``wide``'s cache (partitioned so) adaptive execution can drop this
    # exchange when the anti-join is broadcast; kept, so that each account's rows meet in one
    # partition whatever the plan above it
    replayed = (on_time.select(*fraud.TXN_FIELDS).repartition("account_id")
                .sortWithinPartitions("account_id", "event_time_ms", "txn_id")
                .mapInPandas(alerts_sorted(profiles, params, states_in or {}, end_ms,
                                           stream_velocity),
                             ALERT_OUTPUT).cache())
    batch_alerts = replayed.where(F.col("kind") == "alert")
    states_out = dict(replayed.where(F.col("kind") == "state")
                      .select("account_id", "state").collect())
    for account, text in (states_in or {}).items():  # accounts idle in this interval
        if account not in states_out:
            at_end = state_at(fraud.state_from_json(text), end_ms, params)
            if at_end is not None:
                states_out[account] = at_end
    cross_ids = wide.where("cross_partition").select("txn_id").distinct()
    b = batch_alerts.where(alert_scope).select("alert_id", "rule", "account_id", "txn_ids",
                                               "event_time_ms", F.lit(True).alias("in_batch"))
    s = (stream_alerts.where(alert_scope).select("alert_id", F.col("rule").alias("s_rule"),
                                                 F.col("account_id").alias("s_account"),
                                                 F.col("event_time_ms").alias("s_time"))
         .distinct().withColumn("in_stream", F.lit(True)))
    alerts = (b.join(s, "alert_id", "full_outer")
              .select("alert_id", F.coalesce("rule", "s_rule").alias("rule"),
                      F.coalesce("account_id", "s_account").alias("account_id"), "txn_ids",
                      F.coalesce("event_time_ms", "s_time").alias("event_time_ms"),
                      F.coalesce("in_batch", F.lit(False)).alias("in_batch"),
                      F.coalesce("in_stream", F.lit(False)).alias("in_stream")))
    dependent = (alerts.select("alert_id", F.explode(F.split("txn_ids", ",")).alias("txn_id"))
                 .join(cross_ids, "txn_id").select("alert_id").distinct()
                 .withColumn("order_dependent", F.lit(True)))
    # a late transaction of the account within the rules' reach (look-back and silence), or
    # one the fraud job named as come behind its watermark (an order the stream could not keep:
    # jobs/streaming/fraud.py, state ``behind``)
    behind_ids = (stream_alerts.select(F.explode(f"details.{fraud.BEHIND_KEY}")
                                       .alias("txn_id")).distinct())
    behind = (wide.where(F.col("outcome") == semantics.ACCEPTED)
              .select("txn_id", "account_id", "event_time_ms").join(behind_ids, "txn_id"))
    explaining = (late_all.select("account_id", "event_time_ms")
                  .unionByName(behind.select("account_id", "event_time_ms")))
    late_near = (alerts.select("alert_id", "account_id", "event_time_ms").alias("a")
                 .join(explaining.select("account_id", F.col("event_time_ms").alias("late_ms"))
                       .alias("l"), "account_id")
                 .where(F.abs(F.col("a.event_time_ms") - F.col("late_ms")) <= params.reach_ms)
                 .select("alert_id").distinct().withColumn("late_dependent", F.lit(True)))
    alerts = (alerts.join(dependent, "alert_id", "left").join(late_near, "alert_id", "left")
              .fillna({"order_dependent": False, "late_dependent": False}))
    classify_alert = F.udf(lambda s_, b_, o_, l_: reconcile.classify_alert(s_, b_, o_, l_),
                           "string")
    alerts = alerts.withColumn("reconciliation_class", classify_alert(
        "in_stream", "in_batch", "order_dependent", "late_dependent")).cache()
    alerts = follow_velocity_silence(spark, cfg, alerts, replayed, start_ms)

    # DLQ counts per error class, over the raw records in scope
    scope = (deduped.select("partition", "offset", "outcome")
             .unionByName(invalid.select("partition", "offset",
                                         F.col("error_class").alias("outcome"))))
    batch_dlq = scope.where(~F.col("outcome").isin(semantics.ACCEPTED, semantics.DUPLICATE))
    stream_dlq = (dlq.where(F.col("source_topic") == t.transactions)
                  .join(scope.select(F.col("partition").alias("source_partition"),
                                     F.col("offset").alias("source_offset")),
                        ["source_partition", "source_offset"]))
    batch_counts = Counter(dict(batch_dlq.groupBy("outcome").count().collect()))
    stream_counts = Counter(dict(stream_dlq.groupBy("error_class").count().collect()))
    dlq_rows = [(cls, stream_counts.get(cls, 0), batch_counts.get(cls, 0),
                 reconcile.classify_count(stream_counts.get(cls, 0), batch_counts.get(cls, 0)))
                for cls in contract.ERROR_CLASSES]

    outcomes = Counter(dict(scope.groupBy("outcome").count().collect()))
    raw_in_scope = sum(outcomes.values())
    accepted_n = outcomes.get(semantics.ACCEPTED, 0)
    duplicates_n = outcomes.get(semantics.DUPLICATE, 0)
    dlq_n = raw_in_scope - accepted_n - duplicates_n
    agg_classes = Counter(dict(aggregates.groupBy("reconciliation_class").count().collect()))
    alert_classes = Counter(dict(alerts.groupBy("reconciliation_class").count().collect()))
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
    late_n = late.count()
    summary["rates"] = {
        "dlq_rate": dlq_n / raw_in_scope if raw_in_scope else 0.0,
        "duplicate_rate": duplicates_n / raw_in_scope if raw_in_scope else 0.0,
        "late_rate": late_n / accepted_n if accepted_n else 0.0,
    }
    summary["metrics"] = run_metrics(accepted, raw_in_scope, accepted_n, batch_counts,
                                     summary["rates"], unexplained, keys)
    quality_frames = {
        "accepted_transactions": accepted.select(*contract.FIELD_NAMES),
        "aggregates": batch_aggs.select(
            "*", (F.col("purchase_cents") - F.col("refund_cents"))
            .alias("purchase_minus_refund_cents"),
            (F.col("purchase_count") + F.col("refund_count")).alias("purchase_plus_refund_count"),
            (F.col("window_start_ms") % w).alias("window_offset_ms"),
            (F.col("window_end_ms") - F.col("window_start_ms")).alias("window_length_ms")),
        "run_rates": spark.createDataFrame([tuple(summary["rates"].values())],
                                           "dlq_rate DOUBLE, duplicate_rate DOUBLE, "
                                           "late_rate DOUBLE"),
    }
    return {"aggregates": aggregates, "alerts": alerts, "quality_frames": quality_frames,
            "dlq": spark.createDataFrame(dlq_rows, "error_class STRING, stream LONG, "
                                                   "batch LONG, reconciliation_class STRING"),
            "summary": summary, "rule_state": states_out}


def run_metrics(accepted, raw_n: int, accepted_n: int, dlq_counts: Counter, rates: dict,
                unexplained: int, keys: int) -> dict:
    """What the drift checks compare from run to run (jobs/batch/drift.py)."""
    from pyspark.sql import functions as F

    from jobs.batch import drift

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


def check_drift(cfg, start_ms: int, end_ms: int, metrics: dict) -> dict:
    """Append the run's metrics to the history (one file per interval: a re-run replaces its
    own) and compare them with the runs of earlier intervals."""
    from jobs.batch import drift

    earlier = [h["metrics"] for h in metrics_history(cfg) if h["start_ms"] < start_ms]
    result = drift.compare(metrics, earlier, cfg.drift)
    history_dir(cfg).mkdir(parents=True, exist_ok=True)
    (history_dir(cfg) / f"interval={start_ms}_{end_ms}.json").write_text(
        json.dumps(metrics, sort_keys=True) + "\n")
    return result


def history_dir(cfg) -> Path:
    return cfg.paths.data_dir / "quality" / "history"


def metrics_history(cfg) -> list[dict]:
    """Every run's metrics in the history, by interval start: {start_ms, end_ms, metrics}."""
    out = []
    for f in history_dir(cfg).glob("interval=*.json"):
        start, end = (int(x) for x in f.stem.split("=", 1)[1].split("_"))
        out.append({"start_ms": start, "end_ms": end, "metrics": json.loads(f.read_text())})
    return sorted(out, key=lambda h: h["start_ms"])


def load_profiles(spark, cfg) -> dict[str, dict[int, fraud.Profile]]:
    """Every valid profile version of the raw accounts log, in (partition, offset) order
    (a small reference topic: collected to the driver and shipped with the rules)."""
    raw = read_raw(spark, cfg, cfg.topics.accounts, None)
    out: dict[str, dict[int, fraud.Profile]] = {}
    if raw is None:
        return out
    rules = config_mod.contract_rules(cfg)
    for r in raw.orderBy("partition", "offset").select("key", "value").collect():
        v = contract.validate_profile(r["value"], r["key"], rules)
        if isinstance(v, contract.ValidProfile):
            p = v.profile
            out.setdefault(p["account_id"], {})[p["valid_from_ms"]] = fraud.Profile(
                p["valid_from_ms"], p["home_country"], p["risk_tier"])
        elif isinstance(v, contract.Tombstone) and r["key"] is not None:
            out.pop(bytes(r["key"]).decode("utf-8", "replace"), None)
    return out


def write(results: dict, out_dir: Path) -> None:
    """Replace the interval's result folder as a whole: one Parquet file per table with a
    fixed name, rows sorted, so a re-run of the interval gives the same files."""
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
    (tmp / "summary.json").write_text(json.dumps(results["summary"], indent=2,
                                                 sort_keys=True) + "\n")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)


BATCH_JAVA_OPTIONS = "-XX:+UseParallelGC"


def spark_session(master: str | None, app: str = "payline-reconcile",
                  extra: dict[str, str] | None = None):
    """The job's session: ``local[*]`` unless a master is given or spark-submit launched it
    (then spark-submit's own settings, e.g. ``--driver-memory``, apply). ``extra``: more
    settings, e.g. ``spark.driver.memory`` for a local run (only before the JVM starts). A
    JVM this process starts runs the parallel collector (``BATCH_JAVA_OPTIONS``) unless
    ``extra`` sets ``spark.driver.extraJavaOptions``."""
    import os

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app)
    extra = dict(extra or {})
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # this process starts the driver's JVM
        # the throughput collector for a batch job: 10 M events, the recompute 2-4 s faster
        # than with Java 17's default G1, whose concurrent threads take one of 2 cores
        # (bench/RESULTS.md, session 23). Under spark-submit: --driver-java-options
        extra.setdefault("spark.driver.extraJavaOptions", BATCH_JAVA_OPTIONS)
    for key, value in extra.items():
        builder = builder.config(key, value)
    if master:
        builder = builder.master(master)
    elif "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit: local
        builder = builder.master("local[*]")
    session = (builder.config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", "8")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               # the cached frames (the deduplicated rows, the judged aggregate pairs, the
               # alerts) are read back a few times each: building them uncompressed costs far
               # less than compressing them
               # (10 M events: the recompute 68-75 s -> 43-44 s, the caches 1.5 -> 2.6 GB;
               # MEMORY_AND_DISK, so a smaller heap spills instead of failing)
               .config("spark.sql.inMemoryColumnarStorage.compressed", "false")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               # the lake's date=/hour= folders stay strings ("05", not 5)
               .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    return session


def run(cfg, start_ms: int, end_ms: int, spark, timings: dict | None = None) -> dict:
    """The whole run; ``timings`` (if given) gets the seconds of each phase: "reconcile"
    (recompute, classification, result files), "quality" (suites and drift), "report"."""
    import time

    from jobs.batch import quality, report

    timings = {} if timings is None else timings
    t0 = time.perf_counter()
    results = build(spark, cfg, start_ms, end_ms)
    t1 = time.perf_counter()
    # data quality is reported (summary, Data Docs), it does not decide the exit code
    results["summary"]["quality"] = quality.validate(cfg, results["quality_frames"])
    results["summary"]["data_docs"] = str(quality.docs_index(cfg))
    checks = check_drift(cfg, start_ms, end_ms, results["summary"]["metrics"])
    results["summary"]["drift"] = checks
    results["summary"]["drift_flags"] = sorted(k for k, v in checks.items() if v["drifted"])
    t2 = time.perf_counter()
    out_dir = cfg.paths.data_dir / "reconciliation" / f"interval={start_ms}_{end_ms}"
    write(results, out_dir)
    write_rule_state(cfg, end_ms, results["rule_state"])
    results["out_dir"] = out_dir
    t3 = time.perf_counter()
    results["report"] = report.write(spark, cfg, results)
    timings.update(reconcile=(t1 - t0) + (t3 - t2), quality=t2 - t1,
                   report=time.perf_counter() - t3)
    return results


def main(argv=None) -> int:
    args = parse_args(argv if argv is not None else sys.argv[1:])
    try:
        cfg = config_mod.load(args.conf, args.set)
        start_ms, end_ms = interval_of(args, cfg)
    except (UsageError, config_mod.ConfigError) as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 2
    spark = spark_session(args.master)
    try:
        results = run(cfg, start_ms, end_ms, spark)
    except UsageError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 2
    finally:
        spark.stop()
    s = results["summary"]
    report(results)
    return exit_code(s)


def exit_code(summary: dict) -> int:
    return 1 if summary["unexplained"] or not summary["accounting"]["holds"] else 0


def report(results: dict) -> None:
    """The run's lines for the operator."""
    from jobs.batch import quality

    s = results["summary"]
    start_ms, end_ms = s["interval"]["start_ms"], s["interval"]["end_ms"]
    failed = quality.failing(s)
    print(f"reconciled [{start_ms}, {end_ms}): aggregates {s['aggregates']}, alerts "
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
