"""A small raw lake with traffic an analyst would recognise, for the report's browser test and
its screenshot: a few hundred transactions in four currencies (JPY without a minor unit) over
some windows of a ten-minute interval, a few late ones the stream routed to the late topic, one
duplicate and one malformed record, and what the stream "committed", written with the
archiver's own file writer (no Kafka). Optionally one aggregate the stream lost."""

from __future__ import annotations

import random
from pathlib import Path

from runtime import config
from tests.support.records import enc, write_topic
from udfs import fraud, semantics

T0 = 1767225600000  # 2026-01-01T00:00:00Z
W = 60_000
INTERVAL = (T0, T0 + 10 * W)
TOPICS = config.load().topics
# (currency, typical amount in its minor unit)
CURRENCIES = (("EUR", 4_000), ("USD", 5_000), ("GBP", 3_500), ("JPY", 6_000))
BUSY_WINDOWS = (1, 2, 3, 5, 6)  # windows 0, 4 and 7-9 have no traffic
LATE_COUNT = 4


def transactions(n: int = 400, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        currency, typical = CURRENCIES[i % len(CURRENCIES)]
        window = BUSY_WINDOWS[rng.randrange(len(BUSY_WINDOWS))]
        out.append({"txn_id": f"t{i:04d}", "account_id": f"acct-{rng.randrange(80):02d}",
                    "merchant_id": f"m-{rng.randrange(9)}",
                    "amount_cents": max(1, int(rng.lognormvariate(0, 0.9) * typical)),
                    "currency": currency, "kind": "refund" if i % 17 == 0 else "purchase",
                    "event_time_ms": T0 + window * W + rng.randrange(W),
                    "channel": ("web", "pos", "mobile")[i % 3], "country": "DE"})
    return out


def build(root: Path, *, lose_one_aggregate: bool = False) -> dict:
    """Write the lake under ``root`` (a configuration's raw_dir); returns what was written:
    the transactions, the late ones and the stream's aggregates."""
    txns = transactions()
    late = [t for t in txns if t["amount_cents"] < fraud.DEFAULT_PARAMS.large_amount_cents
            ][-LATE_COUNT:]
    on_time = [t for t in txns if t not in late]
    raw = [(i % 2, enc(t)) for i, t in enumerate(on_time)]
    raw += [(0, enc(on_time[0])), (1, b'{"txn_id": "broken"')]  # a duplicate, a malformed
    raw += [(1, enc(t)) for t in late]  # the late ones arrived last
    write_topic(root, TOPICS.transactions, [(p, b"k", v) for p, v in raw], T0 + 30_000)
    aggs = semantics.aggregate(on_time, W)
    keys = sorted(aggs)
    lost = keys[len(keys) // 2] if lose_one_aggregate else None
    after = INTERVAL[1] + 100_000
    write_topic(root, TOPICS.aggregates, [(0, k.encode(), enc(a.as_dict()))
                                     for k, a in sorted(aggs.items()) if k != lost], after)
    write_topic(root, TOPICS.late, [(0, t["account_id"].encode(),
                                semantics.late_record(t, INTERVAL[1], W).encode())
                               for t in late], after)
    offsets_p1 = sum(1 for i in range(len(on_time)) if i % 2)
    write_topic(root, TOPICS.dlq, [(0, None, enc({
        "error_class": "MALFORMED", "error": "x", "raw": "", "raw_encoding": "utf8",
        "source_topic": TOPICS.transactions, "source_partition": 1,
        "source_offset": offsets_p1, "source_timestamp_ms": T0}))], after)
    write_topic(root, TOPICS.alerts, [(0, a.account_id.encode(), a.record(T0).encode())
                                 for a in fraud.alerts_of(on_time)], after)
    return {"transactions": txns, "late": late, "aggregates": aggs, "lost": lost}
