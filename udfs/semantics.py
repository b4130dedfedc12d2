"""Dedup, event-time windows, lateness, aggregates and output records
(docs/contract.md#deduplication, #event-time, #outputs): the pure core both the Flink job and
the Spark recompute call. No pyflink, no pyspark.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from udfs.contract import CONFLICTING_DUPLICATE, FIELD_NAMES, INT_FIELDS

# --- dedup (docs/contract.md#deduplication) -------------------------------------------------------

ACCEPTED = "ACCEPTED"
DUPLICATE = "DUPLICATE"


# in no field of docs/contract.md#fields: ids, country and the allow-lists exclude it
FINGERPRINT_SEPARATOR = "|"


def fingerprint(txn: dict) -> str:
    """What two copies of a txn_id must share to be one transaction: all nine fields of
    docs/contract.md#fields. The Flink job computes the same string in SQL (``CONCAT_WS`` of
    the fields in this order)."""
    return FINGERPRINT_SEPARATOR.join(str(txn[name]) for name in FIELD_NAMES)


def dedup_decision(first: tuple[str, int] | None, txn: dict, horizon_ms: int) -> str:
    """ACCEPTED, DUPLICATE or CONFLICTING_DUPLICATE for a valid record.

    ``first`` is (fingerprint, event_time_ms) of the first valid copy of the record's txn_id
    in processing order, or None when there was none. A copy whose event time lies a whole
    horizon or more away from the first one's is a transaction of its own.
    """
    if first is None:
        return ACCEPTED
    first_fingerprint, first_event_time_ms = first
    if abs(txn["event_time_ms"] - first_event_time_ms) >= horizon_ms:
        return ACCEPTED
    return DUPLICATE if first_fingerprint == fingerprint(txn) else CONFLICTING_DUPLICATE


def fingerprint_sql() -> str:
    """:func:`fingerprint` as SQL over the nine field columns (Flink SQL and Spark SQL alike:
    a BIGINT cast to STRING gives the same digits as Python's ``str``)."""
    return f"CONCAT_WS('{FINGERPRINT_SEPARATOR}', " + ", ".join(
        f"CAST({n} AS STRING)" if n in INT_FIELDS else n
        for n in FIELD_NAMES) + ")"


def same_fingerprint_sql(first_fingerprint: str, fingerprint_column: str = "fingerprint") -> str:
    """The fingerprint comparison of :func:`dedup_decision` as SQL, over a column of
    :func:`fingerprint_sql` and the first copy's (the Flink job keeps only that string of the
    first copy in its dedup state)."""
    return f"{fingerprint_column} = {first_fingerprint}"


def same_fields_sql(first_prefix: str) -> str:
    """The fingerprint comparison of :func:`dedup_decision` as SQL without building the
    fingerprints: each of the nine columns equal to the first copy's column
    ``<first_prefix><name>``. Two valid records have equal fingerprints exactly when their
    nine fields are equal (an integer's digits are the integer; the separator is in no
    field), so this decides as the string comparison does, without a 100-byte string per
    record (the Spark recompute sorts every record with its columns)."""
    return "(" + " AND ".join(f"{n} = {first_prefix}{n}" for n in FIELD_NAMES) + ")"


def dedup_decision_sql(horizon_ms: int, copies: str, first_event_time_ms: str,
                       same_as_first: str) -> str:
    """:func:`dedup_decision` as a SQL CASE for a valid record (Flink SQL and Spark SQL alike).
    ``copies`` is the number of valid copies of its txn_id up to and including it in
    processing order; ``first_event_time_ms`` the first copy's event time; ``same_as_first``
    the fingerprint comparison with the first copy (:func:`same_fingerprint_sql` or
    :func:`same_fields_sql`)."""
    return (f"CASE WHEN {copies} = 1"
            f" OR ABS(event_time_ms - {first_event_time_ms}) >= {horizon_ms}"
            f" THEN '{ACCEPTED}'"
            f" WHEN {same_as_first} THEN '{DUPLICATE}'"
            f" ELSE '{CONFLICTING_DUPLICATE}' END")


# --- windows and lateness (docs/contract.md#event-time) -------------------------------------------
# The reference of udfs.windows, whose SQL texts the Flink jobs and the Spark recompute run; the
# tests hold those texts to these functions.


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


# --- aggregates (docs/contract.md#aggregates) -----------------------------------------------
# The reference of udfs.windows.AGGREGATE_MEASURES (SQL); reconciliation adds late transactions
# back with Aggregate.add (udfs.reconcile.with_late).

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


# --- output records (docs/contract.md#outputs) ----------------------------------------------------


def _dumps(obj: dict) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def raw_text(raw: bytes | None) -> tuple[str, str]:
    """A raw record value kept losslessly in JSON: (text, "utf8"), else (base64, "base64")."""
    raw = raw or b""
    try:
        return raw.decode("utf-8"), "utf8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def dlq_record(error_class: str, error: str, raw: bytes | None, source_topic: str,
               source_partition: int, source_offset: int, source_timestamp_ms: int) -> str:
    """The payments.dlq value: the raw record kept losslessly (UTF-8 text, else base64)."""
    text, encoding = raw_text(raw)
    return _dumps({
        "error_class": error_class, "error": error, "raw": text, "raw_encoding": encoding,
        "source_topic": source_topic, "source_partition": source_partition,
        "source_offset": source_offset, "source_timestamp_ms": source_timestamp_ms,
    })


CONFLICT_ERROR = "txn_id: {txn_id} was accepted earlier with other field values"


def conflict_error(txn_id: str) -> str:
    return CONFLICT_ERROR.format(txn_id=txn_id)


def conflict_dlq_record(txn: dict, raw: bytes, source_topic: str, source_partition: int,
                        source_offset: int, source_timestamp_ms: int) -> str:
    return dlq_record(CONFLICTING_DUPLICATE, conflict_error(txn["txn_id"]), raw, source_topic,
                      source_partition, source_offset, source_timestamp_ms)


def late_record(txn: dict, watermark_ms: int, window_ms: int) -> str:
    """The payments.late-transactions value: the fields of docs/contract.md#fields plus watermark
    and missed window."""
    out = {k: txn[k] for k in FIELD_NAMES}
    out["watermark_ms"] = watermark_ms
    out["window_start_ms"] = window_start(txn["event_time_ms"], window_ms)
    return _dumps(out)
