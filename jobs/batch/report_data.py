"""What the analyst report shows, collected from a reconciliation run's result files (small,
already aggregated; on the driver): the windows' figures, samples of the mismatching keys and
alerts, the amounts per currency and the drift history."""

from __future__ import annotations

from pyspark.sql import functions as F

from jobs.batch import drift
from udfs import reconcile

SAMPLE_ROWS = 25
WINDOW_FIGURES = ("keys", "not_match", "unexplained", "stream_txn_count", "batch_txn_count",
                  "stream_net_cents", "batch_net_cents")


def collect(spark, cfg, results: dict) -> dict:
    out_dir = results["out_dir"]
    aggs = spark.read.parquet(str(out_dir / "aggregates.parquet"))

    def field(column, name):
        return F.coalesce(F.col(f"{column}.{name}"), F.lit(0))

    windows = [r.asDict() for r in (
        aggs.groupBy("window_start_ms").agg(
            F.count("*").alias("keys"),
            F.sum(F.when(F.col("reconciliation_class") != reconcile.MATCH, 1).otherwise(0))
             .alias("not_match"),
            F.sum(F.when(F.col("reconciliation_class").isin(*reconcile.UNEXPLAINED), 1)
                  .otherwise(0)).alias("unexplained"),
            F.sum(field("stream", "txn_count")).alias("stream_txn_count"),
            F.sum(field("batch", "txn_count")).alias("batch_txn_count"),
            F.sum(field("stream", "net_cents")).alias("stream_net_cents"),
            F.sum(field("batch", "net_cents")).alias("batch_net_cents"))
        .orderBy("window_start_ms").collect())]

    def sample(df, order):
        unexplained_first = F.when(F.col("reconciliation_class").isin(*reconcile.UNEXPLAINED),
                                   0).otherwise(1)
        rows = (df.where(F.col("reconciliation_class") != reconcile.MATCH)
                .orderBy(unexplained_first, *order).limit(SAMPLE_ROWS).collect())
        return [r.asDict(recursive=True) for r in rows]

    # the late transactions that explain a key, by txn_id (in the stored order: sorted; null
    # when the key has none)
    late_ids = F.transform("late", lambda t: t["txn_id"])
    alerts = spark.read.parquet(str(out_dir / "alerts.parquet"))
    accepted = results["quality_frames"]["accepted_transactions"]
    # amounts per currency in fifth-of-a-decade bins of log10(amount in minor units)
    bins = accepted.groupBy("currency", F.floor(F.log10("amount_cents") * 5).alias("bin")) \
                   .count().collect()
    hist: dict[str, dict[int, int]] = {}
    for r in bins:
        hist.setdefault(r["currency"], {})[int(r["bin"])] = r["count"]
    return {
        "windows": windows,
        "sample_aggregates": sample(aggs.withColumn("late_txn_ids", late_ids).drop("late"),
                                    ["account_id", "currency", "window_start_ms"]),
        "sample_alerts": sample(alerts, ["alert_id"]),
        "amount_bins": hist,
        "history": history(cfg, results["summary"]["interval"]["start_ms"]),
    }


def history(cfg, up_to_start_ms: int) -> list[dict]:
    """The drift history of the runs up to this one, oldest first."""
    return [h for h in drift.metrics_history(cfg) if h["start_ms"] <= up_to_start_ms]


def windows_with_traffic(windows: list[dict], start_ms: int, end_ms: int,
                         window_ms: int) -> list[dict]:
    """The interval's windows from the first to the last that has a key on either side, in
    order; a window between them with none has zeros (the time axis has no holes). Empty when
    no window has traffic."""
    have = {w["window_start_ms"]: w for w in windows
            if start_ms <= w["window_start_ms"] < end_ms and w["keys"]}
    if not have:
        return []
    zero = dict.fromkeys(WINDOW_FIGURES, 0)
    return [have.get(t, {"window_start_ms": t, **zero})
            for t in range(min(have), max(have) + window_ms, window_ms)]
