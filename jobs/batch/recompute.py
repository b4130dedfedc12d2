"""The batch side of a reconciliation: the raw log (docs/contract.md#raw-log) of
``payments.transactions`` read from the lake, validated (``udfs.contract``), deduplicated
(``udfs.semantics.dedup_decision_sql``) and aggregated per account, currency and window
(``udfs.windows``: the same SQL texts the Flink job runs), as Spark DataFrames.

:func:`read_raw` reads the lake; :func:`recompute` is the transform from the raw records to the
frames, the lake read left to the caller (jobs/batch/reconcile.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
from pyspark.sql import Window
from pyspark.sql import functions as F

from runtime.settings import contract_rules
from udfs import contract, semantics, windows

TXN_COLUMNS = ("error_class", "error") + contract.FIELD_NAMES
SPARK_TXN_SCHEMA = (
    "partition INT, offset LONG, timestamp_ms LONG, error_class STRING, error STRING, "
    "txn_id STRING, account_id STRING, merchant_id STRING, amount_cents LONG, "
    "currency STRING, kind STRING, event_time_ms LONG, channel STRING, country STRING")


# --- the lake ----------------------------------------------------------------------------------


def raw_hours(start_ms: int, end_ms: int) -> list[tuple[str, str]]:
    """The lake's (date, hour) arrival folders that [start_ms, end_ms) touches."""
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
    path = cfg.paths.raw_dir / topic
    if not path.exists():
        return None
    df = spark.read.parquet(str(path))
    if hours is not None:
        df = df.where(F.concat_ws("/", "date", "hour").isin([f"{d}/{h}" for d, h in hours]))
    return df.drop("date", "hour")


# --- shared expressions ------------------------------------------------------------------------


def between(column, start_ms: int, end_ms: int):
    """start <= column < end."""
    return (column >= start_ms) & (column < end_ms)


def window_start_of(column: str, window_ms: int):
    """``udfs.windows.window_start_sql`` of an epoch-ms column: its window's start."""
    return F.expr(windows.window_start_sql(column, window_ms))


# --- validation and dedup (docs/contract.md#validation) -------------------------------------------


def validate_batches(rules):
    """Over Arrow batches of raw records: ``udfs.contract.validate_arrow`` (the common valid
    shape vectorised, every other record through ``validate``), with each record's position.
    Runs on the executors."""
    def run(batches):
        for batch in batches:
            checked = contract.validate_arrow(batch.column("value"), rules)
            source = pa.Table.from_batches([batch]).select(
                ["partition", "offset", "timestamp_ms"]).take(checked.column("row"))
            out = pa.Table.from_arrays(
                source.columns + checked.drop_columns(["row"]).columns,
                names=source.column_names + list(TXN_COLUMNS))
            yield from out.to_batches()
    return run


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
    stream interleaved the partitions (docs/contract.md#deduplication). One pass over valid and
    invalid rows alike, so the validation is read once."""
    valid = F.col("error_class").isNull()
    # the invalid rows make one group (null txn_id), which the window spills if it is large;
    # spreading them by a second partition expression made the 10 M run 20 s slower, but
    # that was measured with the expression inside partitionBy, which each of the two windows
    # aliases anew, so the rows were shuffled twice (bench/RESULTS.md, 2026-11-27, commit
    # 1bf8e14): a column computed once before the windows would be the fair test
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


# --- the window aggregate (docs/contract.md#aggregates) -------------------------------------------


def window_aggregates(accepted, window_ms: int):
    """The aggregate of ``accepted`` transactions (with ``window_start_ms``) per account,
    currency and window: ``udfs.windows.AGGREGATE_MEASURES``, the SQL texts the Flink job runs,
    then ``window_end_ms`` and ``net_cents`` (``udfs.windows.derived_sql``)."""
    out = accepted.groupBy(*windows.AGGREGATE_KEY).agg(
        *(F.expr(sql).alias(name) for name, sql in windows.AGGREGATE_MEASURES))
    for name, sql in windows.derived_sql("window_start_ms", window_ms):
        out = out.withColumn(name, F.expr(sql))
    return out


def recompute(raw, cfg, start_ms: int, end_ms: int, replay_from: int) -> dict:
    """The batch side of [start_ms, end_ms), lazily, from ``raw`` (the raw transaction records
    of the arrival hours it needs, :func:`read_raw`): the records validated and deduplicated,
    the valid ones with their windows from ``replay_from`` and the interval's invalid ones by
    arrival time (``wide``, cached), the valid ones within the interval (``deduped``), the
    invalid ones (``invalid``), the accepted transactions and their aggregates per key and
    window (``batch_aggs``)."""
    w = cfg.event_time.window_ms
    # validated and deduplicated in one pass, cached once (10 M events: 5 s less than caching
    # the validation too); the invalid rows keep their error class as the outcome
    checked = validated(raw, contract_rules(cfg))
    decided = dedup(checked, cfg.contract.dedup_horizon_ms).withColumn(
        "window_start_ms", window_start_of("event_time_ms", w))
    # valid rows by their window, from replay_from; invalid ones (no event time) by arrival.
    # Cached without what nothing reads after this (arrival time, error message): 10 M events,
    # about 80 MB less cache; no time difference beyond the noise.
    # Cached by account_id: the per-key sums (whose partial aggregation reduces almost nothing)
    # and the rules' replay by account both find their rows in place: once the cache is built,
    # adaptive execution re-plans them without an exchange of their own (the initial plan
    # still shows one). One shuffle of the rows instead of two (10 M events: recompute +
    # reconcile 140-143 s -> 132-136 s, bench/RESULTS.md, 2026-11-28, commit 7474869)
    wide = decided.where(F.when(F.col("error_class").isNull(), between(
        F.col("window_start_ms"), replay_from, end_ms)).otherwise(between(
            F.col("timestamp_ms"), start_ms, end_ms))).drop("timestamp_ms", "error") \
        .repartition("account_id").cache()
    deduped = wide.where(between(F.col("window_start_ms"), start_ms, end_ms))
    # batch aggregates: every accepted transaction, late ones included (the stream's late
    # records explain the difference)
    accepted = deduped.where(F.col("outcome") == semantics.ACCEPTED)
    return {"wide": wide, "deduped": deduped, "accepted": accepted,
            "invalid": wide.where(F.col("error_class").isNotNull()),
            "batch_aggs": window_aggregates(accepted, w)}
