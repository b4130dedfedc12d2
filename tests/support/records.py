"""Contract records in tests: a valid transaction, JSON as a producer sends it, and records
written into a raw lake as the archiver writes them."""

from __future__ import annotations

import json
from pathlib import Path

from jobs import archiver

GOOD = {"txn_id": "t-1", "account_id": "acct-1", "merchant_id": "m-1", "amount_cents": 100,
        "currency": "USD", "kind": "purchase", "event_time_ms": 1767225600000,
        "channel": "web", "country": "US"}


def enc(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def write_topic(root: Path, topic: str, rows: list[tuple[int, bytes | None, bytes]],
                ts: int) -> dict[int, list[int]]:
    """Rows (partition, key, value) of ``topic`` as archiver files under the lake ``root``,
    offsets from 0 per partition; returns the offsets by partition."""
    by_partition: dict[int, list] = {}
    for partition, key, value in rows:
        records = by_partition.setdefault(partition, [])
        records.append(archiver.RawRecord(topic, partition, len(records), ts, key, value))
    for records in by_partition.values():
        archiver.write_run(root, records)
    return {p: [r.offset for r in rs] for p, rs in by_partition.items()}
