"""Dedup, event-time windows, lateness, aggregates and output records (CONTRACT.md §3 step 4,
§4, §5): the pure core both the Flink job and the Spark recompute call. No pyflink, no pyspark.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from udfs.contract import CONFLICTING_DUPLICATE, FIELD_NAMES, encode_txn

# --- dedup (§3 step 4) -------------------------------------------------------------------------

ACCEPTED = "ACCEPTED"
DUPLICATE = "DUPLICATE"


def fingerprint(txn: dict) -> str:
    """What two copies of a txn_id must share to be one transaction: all nine §1 fields."""
    return encode_txn(txn).decode()


def dedup_decision(earlier_fingerprint: str | None, txn: dict) -> str:
    """ACCEPTED (no earlier accepted copy in the horizon), DUPLICATE, or CONFLICTING_DUPLICATE."""
    if earlier_fingerprint is None:
        return ACCEPTED
    return DUPLICATE if earlier_fingerprint == fingerprint(txn) else CONFLICTING_DUPLICATE


def dedup_state_expires_at(first_event_time_ms: int, horizon_ms: int) -> int:
    """Event time at which the dedup state of a txn_id may go: once the watermark passes it."""
    return first_event_time_ms + horizon_ms


# --- windows and lateness (§4) -----------------------------------------------------------------


def window_start(event_time_ms: int, window_ms: int) -> int:
    """Tumbling windows aligned to the epoch."""
    return event_time_ms - (event_time_ms % window_ms)


def is_late(event_time_ms: int, watermark_ms: int | None, window_ms: int,
            allowed_lateness_ms: int = 0) -> bool:
    """Late: the watermark has passed the end of the transaction's window (plus lateness).

    A window [start, end) is complete once the watermark reaches end - 1, Flink's rule for
    firing it; a transaction arriving after that cannot be counted in it any more.
    """
    if watermark_ms is None:
        return False
    end = window_start(event_time_ms, window_ms) + window_ms
    return end - 1 + allowed_lateness_ms <= watermark_ms


# --- aggregates (§5 payments.account-aggregates) -----------------------------------------------

AGGREGATE_FIELDS = ("account_id", "currency", "window_start_ms", "window_end_ms", "txn_count",
                    "purchase_count", "refund_count", "purchase_cents", "refund_cents",
                    "net_cents", "max_amount_cents")


def aggregate_key(account_id: str, currency: str, window_start_ms: int) -> str:
    return f"{account_id}|{currency}|{window_start_ms}"


@dataclass
class Aggregate:
    account_id: str
    currency: str
    window_start_ms: int
    window_end_ms: int
    txn_count: int = 0
    purchase_count: int = 0
    refund_count: int = 0
    purchase_cents: int = 0
    refund_cents: int = 0
    max_amount_cents: int = 0

    @property
    def net_cents(self) -> int:
        return self.purchase_cents - self.refund_cents

    def add(self, txn: dict) -> None:
        amount = txn["amount_cents"]
        self.txn_count += 1
        if txn["kind"] == "purchase":
            self.purchase_count += 1
            self.purchase_cents += amount
        else:
            self.refund_count += 1
            self.refund_cents += amount
        self.max_amount_cents = max(self.max_amount_cents, amount)

    def as_dict(self) -> dict:
        return {f: getattr(self, f) for f in AGGREGATE_FIELDS}


def aggregate(txns, window_ms: int) -> dict[str, Aggregate]:
    """Aggregates of accepted, on-time transactions, by aggregate key."""
    out: dict[str, Aggregate] = {}
    for t in txns:
        start = window_start(t["event_time_ms"], window_ms)
        key = aggregate_key(t["account_id"], t["currency"], start)
        agg = out.get(key)
        if agg is None:
            agg = out[key] = Aggregate(t["account_id"], t["currency"], start, start + window_ms)
        agg.add(t)
    return out


# --- output records (§5) -----------------------------------------------------------------------


def _dumps(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def dlq_record(error_class: str, error: str, raw: bytes | None, source_topic: str,
               source_partition: int, source_offset: int, source_timestamp_ms: int) -> str:
    """The payments.dlq value: the raw record kept losslessly (UTF-8 text, else base64)."""
    raw = raw or b""
    try:
        text, encoding = raw.decode("utf-8"), "utf8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(raw).decode("ascii"), "base64"
    return _dumps({
        "error_class": error_class, "error": error, "raw": text, "raw_encoding": encoding,
        "source_topic": source_topic, "source_partition": source_partition,
        "source_offset": source_offset, "source_timestamp_ms": source_timestamp_ms,
    })


def conflict_error(txn_id: str) -> str:
    return f"txn_id: {txn_id} was accepted earlier with other field values"


def conflict_dlq_record(txn: dict, raw: bytes, source_topic: str, source_partition: int,
                        source_offset: int, source_timestamp_ms: int) -> str:
    return dlq_record(CONFLICTING_DUPLICATE, conflict_error(txn["txn_id"]), raw, source_topic,
                      source_partition, source_offset, source_timestamp_ms)


def late_record(txn: dict, watermark_ms: int, window_ms: int) -> str:
    """The payments.late-transactions value: the §1 fields plus watermark and missed window."""
    out = {k: txn[k] for k in FIELD_NAMES}
    out["watermark_ms"] = watermark_ms
    out["window_start_ms"] = window_start(txn["event_time_ms"], window_ms)
    return _dumps(out)
