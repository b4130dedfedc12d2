"""The transactions job's fixed data set in tests: every outcome (accepted, duplicate, late,
each DLQ class) at known positions, its independently computed aggregates (plain arithmetic
here, not the code under test), and running it with an optional switch halfway."""

from __future__ import annotations

import json
import time
from collections import defaultdict

from payline.generator.send import producer
from tests.support.kafka_io import account_on, read_all
from tests.support.stack import wait_for

T0 = 1767225600000  # 2026-01-01T00:00:00Z, window-aligned
W = 60000


def topics_of(prefix: str) -> dict[str, str]:
    return {k: f"{prefix}.{k}" for k in ("transactions", "dlq", "late", "aggregates")}


TOPICS = topics_of("it.tx")
CRASH_TOPICS = topics_of("it.crash")


A1, A2, A3 = account_on(0, "a"), account_on(1, "b"), account_on(2, "c")


def txn(txn_id, account, amount, t, kind="purchase", currency="EUR"):
    return {"txn_id": txn_id, "account_id": account, "merchant_id": "m-1",
            "amount_cents": amount, "currency": currency, "kind": kind, "event_time_ms": t,
            "channel": "web", "country": "DE"}


def enc(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def padded(obj, size: int) -> bytes:
    """``obj`` as JSON of exactly ``size`` bytes, filled up by an extra field."""
    head = enc({**obj, "pad": ""})[:-2]
    value = head + b"x" * (size - len(head) - 2) + b'"}'
    assert len(value) == size
    return value


# (label, key, value, expectation): expectation is "accept", "duplicate", "late", or a DLQ class
PHASE_1 = [
    ("a1-1", A1, enc(txn("t-a1-1", A1, 1000, T0 + 1000)), "accept"),
    ("a1-2", A1, enc(txn("t-a1-2", A1, 300, T0 + 2000, kind="refund")), "accept"),
    ("a1-3", A1, enc(txn("t-a1-3", A1, 5000, T0 + 30000)), "accept"),
    ("a2-1", A2, enc(txn("t-a2-1", A2, 200, T0 + 5000, currency="USD")), "accept"),
    ("a2-2", A2, enc(txn("t-a2-2", A2, 700, T0 + 10000)), "accept"),
    ("a1-4", A1, enc(txn("t-a1-4", A1, 400, T0 + 61000)), "accept"),
    ("a3-1", A3, enc(txn("t-a3-1", A3, 900, T0 + 62000)), "accept"),
    # 3 s behind the newest event of its partition: inside the 5 s bound, still in window 0
    ("a3-ooo", A3, enc(txn("t-a3-2", A3, 100, T0 + 59000)), "accept"),
    # a producer retry: the same bytes again
    ("a1-1-retry", A1, enc(txn("t-a1-1", A1, 1000, T0 + 1000)), "duplicate"),
    # the same txn_id with another amount
    ("a1-1-conflict", A1, enc(txn("t-a1-1", A1, 1001, T0 + 1000)), "CONFLICTING_DUPLICATE"),
    # 64 KiB + 1 byte, otherwise a valid transaction
    ("oversize", A2, padded(txn("t-big", A2, 1, T0 + 3000), 65536 + 1), "MALFORMED"),
    ("not-utf8", A2, b'{"txn_id":"t-\xff\xfe"}', "MALFORMED"),
    ("array", A2, enc([txn("t-arr", A2, 1, T0 + 3000)]), "MALFORMED"),
    ("fraction", A3, enc({**txn("t-frac", A3, 1, T0 + 3000), "amount_cents": 1.5}),
     "SCHEMA_VIOLATION"),
    ("boolean", A3, enc({**txn("t-bool", A3, 1, T0 + 3000), "amount_cents": True}),
     "SCHEMA_VIOLATION"),
    ("missing", A3, enc({k: v for k, v in txn("t-miss", A3, 1, T0 + 3000).items()
                         if k != "country"}), "SCHEMA_VIOLATION"),
    ("long-id", A1, enc(txn("t" * 65, A1, 1, T0 + 3000)), "INVALID_VALUE"),
    ("currency", A1, enc(txn("t-cur", A1, 1, T0 + 3000, currency="XXX")), "INVALID_VALUE"),
    # every partition moves past the end of windows 0 and 1 (watermark = max - 5 s)
    ("a1-adv", A1, enc(txn("t-a1-adv", A1, 50, T0 + 130000)), "accept"),
    ("a2-adv", A2, enc(txn("t-a2-adv", A2, 60, T0 + 131000)), "accept"),
    ("a3-adv", A3, enc(txn("t-a3-adv", A3, 70, T0 + 132000)), "accept"),
]
PHASE_2 = [
    # window 0 closed long ago: late, and in no aggregate
    ("a2-late", A2, enc(txn("t-a2-late", A2, 999, T0 + 20000)), "late"),
    # past window 2 everywhere, so window 2 fires; these windows themselves never close
    ("a1-flush", A1, enc(txn("t-a1-flush", A1, 1, T0 + 600000)), "accept-open"),
    ("a2-flush", A2, enc(txn("t-a2-flush", A2, 1, T0 + 600000)), "accept-open"),
    ("a3-flush", A3, enc(txn("t-a3-flush", A3, 1, T0 + 600000)), "accept-open"),
]


def expected_aggregates() -> dict[str, dict]:
    """Plain arithmetic over the accepted, on-time records of closed windows."""
    out: dict[str, dict] = defaultdict(lambda: {
        "txn_count": 0, "purchase_count": 0, "refund_count": 0, "purchase_cents": 0,
        "refund_cents": 0, "max_amount_cents": 0})
    for _, _, value, expect in PHASE_1:
        if expect != "accept":
            continue
        t = json.loads(value)
        start = t["event_time_ms"] // W * W
        key = f"{t['account_id']}|{t['currency']}|{start}"
        a = out[key]
        a.update(account_id=t["account_id"], currency=t["currency"], window_start_ms=start,
                 window_end_ms=start + W)
        a["txn_count"] += 1
        kind = "purchase" if t["kind"] == "purchase" else "refund"
        a[f"{kind}_count"] += 1
        a[f"{kind}_cents"] += t["amount_cents"]
        a["max_amount_cents"] = max(a["max_amount_cents"], t["amount_cents"])
    for a in out.values():
        a["net_cents"] = a["purchase_cents"] - a["refund_cents"]
    return dict(out)


def send(cfg, records, topics=TOPICS) -> dict[str, tuple[int, int]]:
    """Produce in order; label -> (partition, offset)."""
    prod = producer(cfg.kafka.bootstrap)
    positions = {}
    for label, key, value, _ in records:
        def done(err, msg, label=label):
            assert err is None, err
            positions[label] = (msg.partition(), msg.offset())
        prod.produce(topics["transactions"], key=key.encode(), value=value, on_delivery=done)
        prod.flush(30)  # one at a time: the order within a partition is the list's order
    return positions


def committed_aggregates(cfg, topics=TOPICS) -> list[tuple[str, dict]]:
    return [(r.key.decode(), json.loads(r.value))
            for r in read_all(cfg, topics["aggregates"])]


# PHASE_1 up to here is all accepted; the retry, the conflict, the bad records and the records
# that move the watermark come after
FIRST_PART = 8


def run_dataset(cfg, topics, crash=None):
    """Send the data set in its phases and wait for every output; ``crash(after_first_part)``
    is called between the first part of phase 1 and the rest, ``crash(None)`` after it.
    Returns the source positions by label."""
    positions = send(cfg, PHASE_1[:FIRST_PART], topics)
    if crash:
        crash("after the first part")
    positions |= send(cfg, PHASE_1[FIRST_PART:], topics)
    if crash:
        crash(None)
    expected = expected_aggregates()
    early = {k for k, a in expected.items() if a["window_start_ms"] < T0 + 2 * W}
    wait_for(lambda: early <= {k for k, _ in committed_aggregates(cfg, topics)}, 240,
             "the aggregates of windows 0 and 1")
    positions |= send(cfg, PHASE_2, topics)
    wait_for(lambda: set(expected) <= {k for k, _ in committed_aggregates(cfg, topics)}, 120,
             "every closed window's aggregate")
    wait_for(lambda: read_all(cfg, topics["late"]), 60, "the late record")
    time.sleep(2 * cfg.flink.checkpoint_interval_ms / 1000)  # anything extra would show now
    return positions


def outputs(cfg, topics) -> dict[str, list]:
    """The committed outputs, without what names the run (source topic, source timestamp)."""
    def strip(d):
        return {k: v for k, v in d.items() if k not in ("source_topic", "source_timestamp_ms")}
    return {
        "aggregates": sorted(committed_aggregates(cfg, topics), key=lambda kv: kv[0]),
        "dlq": sorted((strip(json.loads(r.value)) for r in read_all(cfg, topics["dlq"])),
                      key=lambda d: (d["source_partition"], d["source_offset"])),
        "late": sorted((json.loads(r.value) for r in read_all(cfg, topics["late"])),
                       key=lambda d: d["txn_id"]),
    }
