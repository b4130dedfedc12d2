"""The aggregates of a reconciliation: each key and window's aggregate on the batch side
(jobs/batch/recompute.py) paired with the stream's, and classified (``udfs.reconcile``,
docs/contract.md#reconciliation-classes)."""

from __future__ import annotations

import pyarrow as pa
from pyspark.sql import functions as F

from udfs import contract, reconcile, semantics

# an aggregate as aggregates.parquet holds each side of it: a struct of these typed fields
AGGREGATE_TYPES = tuple((f, "string" if f in ("account_id", "currency") else "bigint")
                        for f in semantics.AGGREGATE_FIELDS)
AGGREGATE_KEY = ["account_id", "currency", "window_start_ms"]


def classify_batches(window_ms: int):
    """Over Arrow batches of aggregate pairs (``stream``, ``batch``: structs of
    AGGREGATE_TYPES or null; ``late``: the stream's late transactions of the key and window):
    each pair's class by ``udfs.reconcile.classify_aggregate``. Runs on the executors."""
    def run(batches):
        for batch in batches:
            classes = [reconcile.classify_aggregate(
                r["stream"], r["batch"], r["late"] or [], bool(r["order_dependent"]),
                (r["account_id"], r["currency"], r["window_start_ms"]), window_ms)
                for r in batch.to_pylist()]
            yield pa.RecordBatch.from_arrays(
                [*batch.columns, pa.array(classes, pa.string())],
                names=[*batch.schema.names, "reconciliation_class"])
    return run


def classified_pairs(batch_aggs, deduped, stream_aggs, late, window_ms: int):
    """Every aggregate key and window of either side: the two sides' aggregates (``batch``:
    ``batch_aggs`` of jobs.batch.recompute; ``stream``: the stream's committed ones), the
    stream's ``late`` transactions of it, whether it is order dependent (a transaction of
    ``deduped`` came on two partitions), and its ``reconciliation_class``."""
    key = AGGREGATE_KEY

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
    return judged.where(F.col("reconciliation_class").isNotNull()).unionByName(
        judged.where(F.col("reconciliation_class").isNull()).drop("reconciliation_class")
        .mapInArrow(classify_batches(window_ms), judged.schema))
