"""Benchmark: recompute + reconcile a large raw log with the Spark job, against DuckDB for the
aggregation part (issue 5's targets: <= 90 s for 10 M events; Spark aggregation <= 3x DuckDB).

1. **Generate** (not timed): N transactions of the contract mix (``payline.generator.plan``:
   duplicates, conflicting duplicates, late and bad records, 100 000 accounts), one hour of
   event time, straight to the Parquet lake with the archiver's own file writer (3 partitions
   keyed by account, offsets in order, arrival time = the generator's schedule). The stream's
   side is written as the streaming jobs would have committed it, computed with the same
   ``udfs/`` core: aggregates of the on-time accepted transactions, the late ones, the DLQ, the
   alerts. Kept under ``--dir``; a second run with the same ``--events`` reuses it.
2. **Spark** (``jobs/batch/reconcile.py`` functions, one local session, ``local[*]``):
   * the aggregation part alone (``reconcile.recompute``): raw log -> validation -> dedup ->
     per-key windows, materialised with Spark's ``noop`` sink;
   * then, from the raw log again, a whole run: the same recompute, the classification of
     aggregates, alerts (the rules' replay) and DLQ counts, the result files ("recompute +
     reconcile"), then the Great Expectations suites and drift, then the report.
   Spark's start-up is timed apart.
3. **DuckDB** (``pip install -e '.[bench]'``): the aggregation part over the same Parquet
   files: JSON parse, the contract's checks as SQL, first copy per txn_id in
   (partition, offset) order with conflicting copies dropped, the per-key window sums.

    .venv/bin/python bench/batch_reconcile.py [--events 10000000] [--dir run/bench-batch]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobs import archiver  # noqa: E402
from payline.generator import plan as generator  # noqa: E402
from runtime import config as config_mod  # noqa: E402
from runtime.settings import contract_rules  # noqa: E402
from udfs import contract, fraud, semantics  # noqa: E402

PARTITIONS = 3
FLUSH = 500_000  # records per Parquet file and partition


class Lake:
    """Writes records of one topic as archiver files, offsets per partition in order."""

    def __init__(self, root: Path, topic: str):
        self.root, self.topic = root, topic
        self.buffers: dict[int, list] = {p: [] for p in range(PARTITIONS)}
        self.next_offset = {p: 0 for p in range(PARTITIONS)}

    def add(self, key: bytes | None, value: bytes, ts: int, partition: int | None = None):
        p = zlib.crc32(key or b"") % PARTITIONS if partition is None else partition
        off = self.next_offset[p]
        self.next_offset[p] = off + 1
        buf = self.buffers[p]
        buf.append(archiver.RawRecord(self.topic, p, off, ts, key, value))
        if len(buf) >= FLUSH:
            self.flush(p)
        return p, off

    def flush(self, p: int | None = None):
        for q in ([p] if p is not None else list(self.buffers)):
            for run in archiver.hour_runs(self.buffers[q]):
                archiver.write_run(self.root, run)
            self.buffers[q] = []


def generate(cfg, events: int) -> dict:
    """The raw log and the stream's committed outputs; returns facts about them."""
    w = cfg.event_time.window_ms
    t = cfg.topics
    raw = cfg.paths.raw_dir
    opts = generator.Options(count=events, rate_per_s=events / 3600.0, accounts=100_000,
                             merchants=5_000, late_by_ms=600_000, late_after=1000)
    txns_lake, accounts_lake = Lake(raw, t.transactions), Lake(raw, t.accounts)
    rules = contract_rules(cfg)
    profiles: dict[str, dict[int, fraud.Profile]] = {}
    aggs: dict[str, semantics.Aggregate] = {}
    late, dlq = [], []
    by_account: dict[str, list[tuple]] = {}  # compact on-time accepted txns for the alerts
    end_ms = opts.start_ms
    for rec in generator.plan(opts):
        ts = opts.start_ms + int(rec.schedule_s * 1000)
        if rec.category == "profile":
            accounts_lake.add(rec.key, rec.value, ts)
            p = json.loads(rec.value)
            profiles.setdefault(p["account_id"], {})[p["valid_from_ms"]] = fraud.Profile(
                p["valid_from_ms"], p["home_country"], p["risk_tier"])
            continue
        end_ms = ts
        partition, offset = txns_lake.add(rec.key, rec.value, ts)
        if rec.category == "valid":
            txn = json.loads(rec.value)
            agg_key = semantics.aggregate_key(txn["account_id"], txn["currency"],
                                              txn["event_time_ms"] // w * w)
            agg = aggs.get(agg_key)
            if agg is None:
                start = txn["event_time_ms"] // w * w
                agg = aggs[agg_key] = semantics.Aggregate(txn["account_id"], txn["currency"],
                                                          start, start + w)
            agg.add(txn)
            by_account.setdefault(txn["account_id"], []).append(tuple(txn.values()))
        elif rec.category == "late":
            txn = json.loads(rec.value)
            late.append((txn, ts - cfg.event_time.out_of_orderness_ms))
        elif rec.category == "duplicate":
            pass
        else:
            if rec.category == "conflicting_duplicate":
                error_class = contract.CONFLICTING_DUPLICATE
            else:
                error_class = contract.validate(rec.value, rules).error_class
            dlq.append((error_class, partition, offset, ts))
    txns_lake.flush()
    accounts_lake.flush()

    out_ts = end_ms + 60_000  # the stream's outputs arrive after the traffic
    lake = Lake(raw, t.aggregates)
    for key, agg in sorted(aggs.items()):
        lake.add(key.encode(), json.dumps(agg.as_dict(), separators=(",", ":")).encode(), out_ts)
    lake.flush()
    lake = Lake(raw, t.late)
    for txn, watermark in late:
        lake.add(txn["account_id"].encode(), semantics.late_record(txn, watermark, w).encode(),
                 out_ts)
    lake.flush()
    lake = Lake(raw, t.dlq)
    for error_class, partition, offset, ts in dlq:
        lake.add(None, json.dumps({
            "error_class": error_class, "error": "", "raw": "", "raw_encoding": "utf8",
            "source_topic": t.transactions, "source_partition": partition,
            "source_offset": offset, "source_timestamp_ms": ts}).encode(), out_ts, 0)
    lake.flush()
    lake = Lake(raw, t.alerts)
    alerts = 0
    params = cfg.fraud.params()
    names = contract.FIELD_NAMES
    for account, rows in by_account.items():
        txns = [dict(zip(names, r, strict=True)) for r in rows]
        for a in fraud.alerts_of(txns, {account: profiles.get(account, {})}, params):
            lake.add(account.encode(), a.record(out_ts).encode(), out_ts)
            alerts += 1
    lake.flush()
    return {"events": events, "start_ms": opts.start_ms, "end_ms": opts.start_ms + 3_600_000,
            "aggregates": len(aggs), "late": len(late), "dlq": len(dlq), "alerts": alerts}


def duckdb_aggregate(cfg, start_ms: int, end_ms: int) -> tuple[float, int]:
    """The aggregation part in DuckDB over the raw Parquet; returns (seconds, keys)."""
    import duckdb

    c = cfg.contract
    currencies = ", ".join(f"'{x}'" for x in c.currencies)
    channels = ", ".join(f"'{x}'" for x in contract.CHANNELS)
    path = cfg.paths.raw_dir / cfg.topics.transactions / "*" / "*" / "*.parquet"
    sql = f"""
    WITH parsed AS (
      SELECT "partition", "offset", TRY(decode(value)) AS v FROM read_parquet('{path}')
    ), fields AS (
      SELECT "partition", "offset",
        json_extract_string(v, '$.txn_id') AS txn_id,
        json_extract_string(v, '$.account_id') AS account_id,
        json_extract_string(v, '$.merchant_id') AS merchant_id,
        TRY_CAST(json_extract(v, '$.amount_cents') AS BIGINT) AS amount_cents,
        json_extract_string(v, '$.currency') AS currency,
        json_extract_string(v, '$.kind') AS kind,
        TRY_CAST(json_extract(v, '$.event_time_ms') AS BIGINT) AS event_time_ms,
        json_extract_string(v, '$.channel') AS channel,
        json_extract_string(v, '$.country') AS country
      FROM parsed WHERE v IS NOT NULL AND json_valid(v)
    ), valid AS (
      SELECT * FROM fields
      WHERE txn_id IS NOT NULL AND account_id IS NOT NULL AND merchant_id IS NOT NULL
        AND amount_cents BETWEEN {c.min_amount_cents} AND {c.max_amount_cents}
        AND currency IN ({currencies}) AND kind IN ('purchase', 'refund')
        AND event_time_ms >= {c.min_event_time_ms} AND event_time_ms < {c.max_event_time_ms}
        AND channel IN ({channels}) AND regexp_full_match(country, '[A-Z]{{2}}')
    ), ranked AS (
      SELECT *, ROW_NUMBER() OVER (PARTITION BY txn_id ORDER BY "partition", "offset") AS rn
      FROM valid
    )
    SELECT account_id, currency, event_time_ms // 60000 * 60000 AS window_start_ms,
      COUNT(*) AS txn_count, SUM((kind = 'purchase')::INT) AS purchase_count,
      SUM((kind = 'refund')::INT) AS refund_count,
      SUM(CASE WHEN kind = 'purchase' THEN amount_cents ELSE 0 END) AS purchase_cents,
      SUM(CASE WHEN kind = 'refund' THEN amount_cents ELSE 0 END) AS refund_cents,
      MAX(amount_cents) AS max_amount_cents
    FROM ranked
    WHERE rn = 1 AND event_time_ms >= {start_ms} AND event_time_ms < {end_ms}
    GROUP BY ALL
    """
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count()}")
    t0 = time.perf_counter()
    keys = con.execute(f"SELECT COUNT(*) FROM ({sql})").fetchone()[0]
    return time.perf_counter() - t0, keys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--dir", default="run/bench-batch", help="the benchmark's lake and outputs")
    ap.add_argument("--driver-memory", default="8g", help="Spark driver memory (local mode)")
    args = ap.parse_args(argv)
    base = (ROOT / args.dir).resolve()
    cfg = config_mod.load(None, [f"paths.data_dir={base}/data",
                                 f"paths.reports_dir={base}/reports"])
    facts_file = base / "lake.json"
    facts = json.loads(facts_file.read_text()) if facts_file.is_file() else None
    if not facts or facts["events"] != args.events:
        shutil.rmtree(base, ignore_errors=True)
        t0 = time.perf_counter()
        facts = generate(cfg, args.events)
        facts_file.write_text(json.dumps(facts))
        print(f"generated in {time.perf_counter() - t0:.0f} s: {facts}")
    # every Spark run starts from the same state: no earlier results, history or rule state
    for sub in ("reconciliation", "quality", "gx"):
        shutil.rmtree(cfg.paths.data_dir / sub, ignore_errors=True)
    shutil.rmtree(cfg.paths.reports_dir, ignore_errors=True)
    raw_bytes = sum(f.stat().st_size for f in cfg.paths.raw_dir.rglob("*.parquet"))

    from jobs.batch import reconcile

    t0 = time.perf_counter()
    spark = reconcile.spark_session(None, "bench-batch-reconcile",
                                    {"spark.driver.memory": args.driver_memory})
    t_start = time.perf_counter() - t0
    s, e = facts["start_ms"], facts["end_ms"]
    t0 = time.perf_counter()
    batch = reconcile.recompute(spark, cfg, s, e, s)
    batch["batch_aggs"].write.format("noop").mode("overwrite").save()
    t_agg = time.perf_counter() - t0
    spark.catalog.clearCache()  # the run below starts from the raw log again
    timings: dict[str, float] = {}
    results = reconcile.run(cfg, s, e, spark, timings)
    t_reconcile, t_quality, t_report = (timings[k] for k in ("reconcile", "quality", "report"))
    t_total = t_reconcile + t_quality + t_report
    spark.stop()
    summary = results["summary"]

    t_duck, duck_keys = duckdb_aggregate(cfg, s, e)
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    print(f"raw log: {facts['events']:,} transactions, {raw_bytes / 2**20:.0f} MiB Parquet; "
          f"stream side {facts['aggregates']:,} aggregates, {facts['late']:,} late, "
          f"{facts['dlq']:,} DLQ, {facts['alerts']:,} alerts")
    print(f"reconciliation: aggregates {summary['aggregates']}, alerts {summary['alerts']}, "
          f"unexplained {summary['unexplained']}, accounting "
          f"{'holds' if summary['accounting']['holds'] else 'BROKEN'}")
    print(f"spark start-up                      {t_start:7.1f} s")
    print(f"spark aggregation part              {t_agg:7.1f} s")
    print(f"spark recompute + reconcile (files) {t_reconcile:7.1f} s   (target <= 90 s)")
    print(f"  + Great Expectations and drift    {t_quality:7.1f} s")
    print(f"  + report                          {t_report:7.1f} s")
    print(f"spark whole run                     {t_total:7.1f} s")
    print(f"duckdb aggregation part             {t_duck:7.1f} s   ({duck_keys:,} keys; "
          f"spark {summary['metrics']['accepted']:,} accepted)")
    print(f"ratio spark / duckdb (aggregation)  {t_agg / t_duck:7.2f}    (target <= 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
