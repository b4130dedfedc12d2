"""Reconciliation classes (docs/contract.md#reconciliation-classes): how one key's streaming output
compares with the batch recompute from the raw log. Pure Python, used by the Spark job per key and
unit-tested on hand-built pairs.

Aggregates, per (account_id, currency, window_start_ms):

* ``MATCH``: the stream committed exactly what the batch recomputes;
* ``EXPLAINED_LATE``: the stream's aggregate plus the transactions it sent to
  ``payments.late-transactions`` for that window equals the batch's (the stream had closed the
  window before they arrived; with no on-time transaction the stream has no aggregate at all);
* ``ORDER_DEPENDENT``: the window holds a transaction whose txn_id also came on another
  partition, where "first copy" depends on the interleaving of partitions
  (docs/contract.md#deduplication);
* ``MISSING_IN_STREAM``, ``EXTRA_IN_STREAM``, ``VALUE_MISMATCH``: unexplained (drift) - they
  fail the run.

Alerts reconcile by ``alert_id`` the same way (:func:`classify_alert`), DLQ counts per error
class (MATCH or VALUE_MISMATCH).
"""

from __future__ import annotations

import dataclasses

from udfs.semantics import AGGREGATE_FIELDS, Aggregate

MATCH = "MATCH"
EXPLAINED_LATE = "EXPLAINED_LATE"
ORDER_DEPENDENT = "ORDER_DEPENDENT"
MISSING_IN_STREAM = "MISSING_IN_STREAM"
EXTRA_IN_STREAM = "EXTRA_IN_STREAM"
VALUE_MISMATCH = "VALUE_MISMATCH"
CLASSES = (MATCH, EXPLAINED_LATE, ORDER_DEPENDENT, MISSING_IN_STREAM, EXTRA_IN_STREAM,
           VALUE_MISMATCH)
UNEXPLAINED = (MISSING_IN_STREAM, EXTRA_IN_STREAM, VALUE_MISMATCH)

_KEY_FIELDS = ("account_id", "currency", "window_start_ms", "window_end_ms")
VALUE_FIELDS = tuple(f for f in AGGREGATE_FIELDS
                     if f not in ("account_id", "currency", "window_start_ms"))


def _values(agg: dict | None) -> dict | None:
    return None if agg is None else {f: agg[f] for f in VALUE_FIELDS}


def with_late(stream: dict | None, late_txns: list[dict], key: tuple[str, str, int],
              window_ms: int) -> dict | None:
    """The stream's aggregate with its window's late transactions added back."""
    if not late_txns:
        return stream
    account, currency, start = key
    counters = {f.name: stream[f.name] for f in dataclasses.fields(Aggregate)
                if f.name not in _KEY_FIELDS} if stream is not None else {}
    agg = Aggregate(account, currency, start, start + window_ms, **counters)
    for txn in late_txns:
        agg.add(txn)
    return agg.as_dict()


def classify_aggregate(stream: dict | None, batch: dict | None, late_txns: list[dict],
                       order_dependent: bool, key: tuple[str, str, int],
                       window_ms: int) -> str:
    """The class (docs/contract.md#reconciliation-classes) of one aggregate key and window.
    ``stream``/``batch`` are aggregate dicts (AGGREGATE_FIELDS) or None; ``late_txns`` the
    stream's late transactions of the window."""
    if stream is None and batch is None:
        raise ValueError(f"{key}: neither side has an aggregate")
    if _values(stream) == _values(batch):
        return MATCH
    if order_dependent:
        return ORDER_DEPENDENT
    if late_txns and _values(with_late(stream, late_txns, key, window_ms)) == _values(batch):
        return EXPLAINED_LATE
    if stream is None:
        return MISSING_IN_STREAM
    if batch is None:
        return EXTRA_IN_STREAM
    return VALUE_MISMATCH


def classify_alert(in_stream: bool, in_batch: bool, order_dependent: bool,
                   late_dependent: bool = False) -> str:
    """An alert_id on one side only is ORDER_DEPENDENT when one of its transactions is, and
    EXPLAINED_LATE when a transaction of the account that came behind a watermark lies within
    the rules' reach of it (``late_dependent``): one the transactions job sent to late, or one
    the fraud job names in an alert's ``details.behind_watermark_txn_ids`` (it judges lateness
    by its own watermark, and meets a transaction that came behind it after later ones)."""
    if in_stream and in_batch:
        return MATCH
    if order_dependent:
        return ORDER_DEPENDENT
    if late_dependent:
        return EXPLAINED_LATE
    return MISSING_IN_STREAM if in_batch else EXTRA_IN_STREAM


def classify_count(stream: int, batch: int) -> str:
    return MATCH if stream == batch else VALUE_MISMATCH


def follow_velocity_silence(alerts: list[dict], silence_ms: int) -> dict[str, str]:
    """One account's VELOCITY alerts on one side only that follow, through the silence, from
    an explained difference before them: ``{alert_id: class}`` for those, each with the class
    of the alert it follows from.

    A VELOCITY firing silences the account for ``silence_ms`` of event time, so once one firing
    differs (a transaction behind the watermark, a cross-partition duplicate), each side's
    silence ends somewhere else and a busy account's later firings differ too, minute after
    minute, beyond any fixed reach. Each such difference is proven, not assumed:

    * on the batch side only, at t: the stream's previous firing is on the stream side only,
      explained, and silences t (t < its event time + ``silence_ms``);
    * on the stream side only, at t: the batch computed exactly this alert (same
      transactions, so the same id) and held it back by its silence only (``silenced``), and
      the batch's previous firing, on the batch side only and explained, silences t.

    ``alerts``: dicts with ``alert_id``, ``event_time_ms``, ``in_stream``, ``in_batch``,
    ``reconciliation_class`` (from :func:`classify_alert`) and ``silenced`` (the batch's replay
    held this alert_id back by its silence)."""
    order = sorted(alerts, key=lambda a: (a["event_time_ms"], a["alert_id"]))
    cls = {a["alert_id"]: a["reconciliation_class"] for a in order}
    firings = {True: [], False: []}  # stream side, batch side: earlier alerts, in order
    found = {}
    for a in order:
        t = a["event_time_ms"]
        if cls[a["alert_id"]] in UNEXPLAINED and a["in_stream"] != a["in_batch"]:
            # the other side's last firing strictly before t
            before = [b for b in firings[not a["in_stream"]] if b["event_time_ms"] < t]
            cause = before[-1] if before else None
            if (cause is not None and (a["in_batch"] or a.get("silenced"))
                    and cause["in_stream"] != cause["in_batch"]
                    and t < cause["event_time_ms"] + silence_ms
                    and cls[cause["alert_id"]] not in (MATCH, *UNEXPLAINED)):
                cls[a["alert_id"]] = found[a["alert_id"]] = cls[cause["alert_id"]]
        if a["in_stream"]:
            firings[True].append(a)
        if a["in_batch"]:
            firings[False].append(a)
    return found
