"""A synthetic raw log straight to the Parquet lake, with the stream's side written as the
streaming jobs would have committed it (computed with the same ``udfs/`` core): one hour of
event time of the contract mix (``payline.generator.plan``: duplicates, conflicting duplicates,
late and bad records, 100 000 accounts), 3 partitions keyed by account, offsets in order,
arrival time = the generator's schedule, files by the archiver's own writer. The stream's side:
aggregates of the on-time accepted transactions, the late ones, the DLQ, the alerts.

For the batch benchmark (``bench/batch_reconcile.py``) and the training run of the driver's
class-data archive (``jobs/batch/class_archive.py``); no broker, no Flink.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

from payline import archiver, generator
from payline import config as config_mod
from udfs import contract, fraud, semantics

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
    rules = config_mod.contract_rules(cfg)
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
