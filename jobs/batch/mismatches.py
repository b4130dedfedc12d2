"""``mismatches.csv``, next to a reconciliation run's Parquet: every aggregate key, alert and DLQ
error class that is not a MATCH, one row each, for a spreadsheet.

Columns (empty where they do not apply to the row's ``kind``): ``kind`` (aggregate, alert,
dlq), ``reconciliation_class``, ``account_id``, ``currency``, ``window_start`` and
``event_time`` (ISO 8601, UTC: the job's Spark session runs in UTC), ``alert_id``, ``rule``,
``error_class``, each side's ``txn_count`` and ``net_cents`` (in the currency's minor unit) of an
aggregate key, each side's DLQ ``records`` of an error class, and ``late_txn_ids``: the late
transactions that explain an aggregate key, space-separated.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pyspark.sql import functions as F

from udfs import reconcile

COLUMNS = (("kind", "string"), ("reconciliation_class", "string"), ("account_id", "string"),
           ("currency", "string"), ("window_start", "string"), ("event_time", "string"),
           ("alert_id", "string"), ("rule", "string"), ("error_class", "string"),
           ("stream_txn_count", "long"), ("batch_txn_count", "long"),
           ("stream_net_cents", "long"), ("batch_net_cents", "long"),
           ("stream_records", "long"), ("batch_records", "long"), ("late_txn_ids", "string"))
ORDER = ("kind", "reconciliation_class", "account_id", "currency", "window_start", "alert_id",
         "error_class")


def _iso(column: str):
    return F.date_format(F.timestamp_millis(F.col(column)), "yyyy-MM-dd'T'HH:mm:ss'Z'")


def _rows(df, kind: str, **columns):
    """``df``'s mismatching rows in the CSV's columns (``columns``: name -> expression)."""
    return df.where(F.col("reconciliation_class") != reconcile.MATCH).select(*[
        (F.lit(kind) if name == "kind" else
         columns.get(name, F.col(name) if name == "reconciliation_class" else F.lit(None)))
        .cast(typ).alias(name) for name, typ in COLUMNS])


def frame(aggregates, alerts, dlq):
    return _rows(
        aggregates, "aggregate", account_id=F.col("account_id"), currency=F.col("currency"),
        window_start=_iso("window_start_ms"),
        stream_txn_count=F.col("stream.txn_count"), batch_txn_count=F.col("batch.txn_count"),
        stream_net_cents=F.col("stream.net_cents"), batch_net_cents=F.col("batch.net_cents"),
        late_txn_ids=F.array_join(F.transform("late", lambda t: t["txn_id"]), " "),
    ).unionByName(_rows(
        alerts, "alert", account_id=F.col("account_id"), event_time=_iso("event_time_ms"),
        alert_id=F.col("alert_id"), rule=F.col("rule"),
    )).unionByName(_rows(
        dlq, "dlq", error_class=F.col("error_class"), stream_records=F.col("stream"),
        batch_records=F.col("batch"),
    ))


def write_csv(df, path: Path) -> None:
    """``df`` (of :func:`frame`) as one CSV file with a header, rows in a fixed order."""
    spark_dir = path.with_name(f"_{path.stem}")
    df.orderBy(*ORDER).coalesce(1).write.option("header", True).csv(str(spark_dir))
    parts = sorted(spark_dir.glob("part-*.csv"))
    if parts and parts[0].stat().st_size:
        parts[0].rename(path)
    else:  # no row: Spark wrote no file, or one without its header
        path.write_text(",".join(name for name, _ in COLUMNS) + "\n")
    shutil.rmtree(spark_dir)
