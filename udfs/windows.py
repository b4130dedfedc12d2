"""Event-time windows, lateness and the window aggregate (docs/contract.md#event-time, #aggregates)
as SQL text: the one definition that the Flink jobs (jobs/streaming/transactions.py, txn_sql.py) and
the Spark recompute (jobs/batch/recompute.py) run. Pure text: no pyflink, no pyspark.

The Python reference for each is in :mod:`udfs.semantics` (:func:`~udfs.semantics.window_start`,
:func:`~udfs.semantics.is_late`, :func:`~udfs.semantics.aggregate`), written independently;
tests/unit/test_windows_sql.py runs these texts in SQLite and holds them to it, boundary by
boundary, and tests/integration/test_windows_engines.py runs them in Spark (and Flink).

The texts are those the Flink jobs have always contained, character for character: a release
upgrades from a savepoint of the previous one only while its SQL plan is the same
(``table.exec.uid.generation``: every stateful operator's uid is its plan node's).

Every expression is over BIGINT epoch milliseconds of positive event times (the contract's
range), where SQL's ``MOD`` and Python's ``%`` agree.
"""

from __future__ import annotations

from collections.abc import Callable

from udfs.contract import KINDS

EVENT_TIME = "event_time_ms"


def _same(epoch_ms_sql: str) -> str:
    return epoch_ms_sql


# --- windows (docs/contract.md#event-time) --------------------------------------------------------


def window_start_sql(column: str, window_ms: int) -> str:
    """:func:`udfs.semantics.window_start` of an epoch-ms column: tumbling windows aligned to
    the epoch. ``window_start_sql("event_time_ms", 60000)`` is
    ``(event_time_ms - MOD(event_time_ms, 60000))``."""
    return f"({column} - MOD({column}, {window_ms}))"


def window_end_sql(window_start: str, window_ms: int) -> str:
    """The end (exclusive) of the window starting at ``window_start`` (a column or
    expression)."""
    return f"{window_start} + {window_ms}"


# --- lateness (docs/contract.md#event-time) -------------------------------------------------------


def late_from_sql(column: str, window_ms: int, allowed_lateness_ms: int = 0,
                  to_time: Callable[[str], str] = _same) -> str:
    """The watermark from which a transaction with event time ``column`` is late: its window's
    end - 1 plus the allowed lateness (Flink fires a window [start, end) once the watermark
    reaches end - 1). ``to_time`` turns this epoch-ms expression into what the watermark is
    compared with: the identity for a watermark in epoch ms (tests, a batch engine), e.g.
    ``lambda ms: f"TO_TIMESTAMP_LTZ({ms}, 3)"`` for a Flink watermark."""
    return to_time(f"{window_start_sql(column, window_ms)} + "
                   f"{window_ms - 1 + allowed_lateness_ms}")


def is_late_sql(column: str, watermark: str, window_ms: int, allowed_lateness_ms: int = 0,
                to_time: Callable[[str], str] = _same, and_: str = " AND ") -> str:
    """:func:`udfs.semantics.is_late` as a SQL condition: ``watermark`` (a column or
    expression, NULL for none yet) has reached :func:`late_from_sql`. ``and_`` joins the two
    parts (the Flink job's line break)."""
    return (f"{watermark} IS NOT NULL{and_}"
            f"{late_from_sql(column, window_ms, allowed_lateness_ms, to_time)} <= {watermark}")


# --- the aggregate (docs/contract.md#aggregates) ------------------------------------------

PURCHASE, REFUND = KINDS


def _count_of(kind: str) -> str:
    return f"SUM(CASE WHEN kind = '{kind}' THEN 1 ELSE 0 END)"


def _cents_of(kind: str) -> str:
    return f"SUM(CASE WHEN kind = '{kind}' THEN amount_cents ELSE 0 END)"


# Per measure of a window's accepted transactions: (output name, SQL aggregate over the
# columns ``kind`` and ``amount_cents``), in the Flink job's SELECT order. The group key is
# (account_id, currency, window start).
AGGREGATE_MEASURES: tuple[tuple[str, str], ...] = (
    ("txn_count", "COUNT(*)"),
    ("purchase_count", _count_of(PURCHASE)),
    ("refund_count", _count_of(REFUND)),
    ("purchase_cents", _cents_of(PURCHASE)),
    ("refund_cents", _cents_of(REFUND)),
    ("max_amount_cents", "MAX(amount_cents)"),
)
AGGREGATE_KEY = ("account_id", "currency", "window_start_ms")

# computed from the measures, after the aggregation
NET_CENTS_SQL = "purchase_cents - refund_cents"


def aggregate_select_sql(separator: str = ", ") -> str:
    """The measures as a SQL select list, ``<sql> AS <name>`` joined by ``separator``."""
    return separator.join(f"{sql} AS {name}" for name, sql in AGGREGATE_MEASURES)


def derived_sql(window_start: str, window_ms: int) -> tuple[tuple[str, str], ...]:
    """What the aggregate record has beyond the measures: (name, SQL over the measures and
    ``window_start``)."""
    return (("window_end_ms", window_end_sql(window_start, window_ms)),
            ("net_cents", NET_CENTS_SQL))
