"""The fraud rules (docs/contract.md#account-profiles and #rules) as pure state machines: the one
definition that the fraud job runs per account in the stream and the batch layer replays from
the raw log. No pyflink, no pyspark, no wall clock (the caller passes ``detected_at_ms``).

Input is the accepted, on-time transactions (after docs/contract.md#validation and #event-time:
late ones take part in no rule).

* ``LARGE_AMOUNT`` looks at one transaction alone: :func:`large_amount`, evaluated as soon as a
  transaction is accepted, in any order.
* ``VELOCITY``, ``SMALL_THEN_LARGE`` and ``FOREIGN_HIGH_RISK`` look at an account's history:
  :func:`step` takes the account's transactions one at a time **in event-time order, ties by
  txn_id** (:func:`order_key`), with the :class:`RuleState` it updates and the profile version
  that applies (:func:`applicable_profile`).

Boundaries, with the contract's defaults:

* ``LARGE_AMOUNT``: ``amount_cents >= large_amount_cents`` (1 000 000), purchase or refund.
* ``VELOCITY``: counting the transaction itself and those of the account before it in the order,
  at least ``velocity_count`` (10) have an event time in (t - ``velocity_window_ms``, t]; then
  no VELOCITY alert for transactions with event time < t + ``velocity_silence_ms``.
* ``SMALL_THEN_LARGE``: a purchase with ``amount_cents >= large_purchase_cents`` (50 000) at t,
  preceded in the order by a purchase with ``amount_cents < small_purchase_cents`` (100) at an
  event time s with t - s <= ``small_then_large_ms`` (60 s). One alert per large purchase,
  paired with the most recent such small purchase.
* ``FOREIGN_HIGH_RISK``: the profile version applicable at t has ``risk_tier`` ``high`` and the
  transaction's ``country`` is not its ``home_country``.

Amounts are compared in minor units whatever the currency, as the contract states them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

LARGE_AMOUNT = "LARGE_AMOUNT"
VELOCITY = "VELOCITY"
SMALL_THEN_LARGE = "SMALL_THEN_LARGE"
FOREIGN_HIGH_RISK = "FOREIGN_HIGH_RISK"
RULES = (LARGE_AMOUNT, VELOCITY, SMALL_THEN_LARGE, FOREIGN_HIGH_RISK)
HIGH, MEDIUM = "high", "medium"
SEVERITY = {LARGE_AMOUNT: HIGH, VELOCITY: MEDIUM, SMALL_THEN_LARGE: HIGH,
            FOREIGN_HIGH_RISK: HIGH}
# the transaction fields the rules read (of docs/contract.md#fields)
TXN_FIELDS = ("txn_id", "account_id", "kind", "amount_cents", "currency", "event_time_ms",
              "country")
ALERT_FIELDS = ("alert_id", "rule", "severity", "account_id", "txn_ids", "event_time_ms",
                "detected_at_ms", "details")


@dataclass(frozen=True)
class FraudParams:
    """The rule parameters; defaults are the contract's (conf/payline.toml ``[fraud]``)."""

    large_amount_cents: int = 1_000_000
    velocity_count: int = 10
    velocity_window_ms: int = 60_000
    velocity_silence_ms: int = 60_000
    small_purchase_cents: int = 100
    large_purchase_cents: int = 50_000
    small_then_large_ms: int = 60_000

    @property
    def lookback_ms(self) -> int:
        """How far back in event time a rule looks from the transaction it evaluates."""
        return max(self.velocity_window_ms, self.small_then_large_ms)

    @property
    def reach_ms(self) -> int:
        """How far in event time one transaction can change an alert: the look-back before an
        alert's transaction plus the VELOCITY silence a firing casts after it."""
        return self.lookback_ms + self.velocity_silence_ms

    def idle_after_ms(self, window_ms: int) -> int:
        """Event time after an account's last transaction from which :func:`expire` leaves its
        rule state empty: an on-time transaction has an event time above watermark -
        window_ms (docs/contract.md#event-time), beyond every look-back and any silence."""
        return window_ms + max(self.lookback_ms, self.velocity_silence_ms) + 1


DEFAULT_PARAMS = FraudParams()


# --- profiles (docs/contract.md#account-profiles) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    valid_from_ms: int | None
    home_country: str | None
    risk_tier: str


# docs/contract.md#account-profiles: an account with no applicable version
NO_PROFILE = Profile(None, None, "low")


def applicable_profile(versions: dict[int, Profile] | None, event_time_ms: int) -> Profile:
    """The version with the greatest valid_from_ms <= event_time_ms, else NO_PROFILE."""
    best = None
    for valid_from in versions or ():
        if valid_from <= event_time_ms and (best is None or valid_from > best):
            best = valid_from
    return NO_PROFILE if best is None else versions[best]


def superseded_versions(versions: dict[int, Profile], watermark_ms: int,
                        window_ms: int) -> list[int]:
    """Versions no on-time transaction can use any more: every one older than the newest
    version that already applies at the earliest event time still on time."""
    floor = watermark_ms - window_ms
    current = [v for v in versions if v <= floor]
    if not current:
        return []
    newest = max(current)
    return [v for v in current if v < newest]


# --- alerts (docs/contract.md#rules) --------------------------------------------------------------


def alert_id(rule: str, txn_ids) -> str:
    """Deterministic in the rule and the triggering txn_ids, so a redelivered alert (a replay
    after a failure, or the batch recompute) carries the same id."""
    return hashlib.sha256(f"{rule}|{','.join(txn_ids)}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Alert:
    rule: str
    account_id: str
    txn_ids: tuple[str, ...]
    event_time_ms: int  # of the transaction that completed the pattern
    details: dict = field(compare=False)

    @property
    def alert_id(self) -> str:
        return alert_id(self.rule, self.txn_ids)

    @property
    def severity(self) -> str:
        return SEVERITY[self.rule]

    def as_dict(self, detected_at_ms: int) -> dict:
        return {"alert_id": self.alert_id, "rule": self.rule, "severity": self.severity,
                "account_id": self.account_id, "txn_ids": list(self.txn_ids),
                "event_time_ms": self.event_time_ms, "detected_at_ms": detected_at_ms,
                "details": self.details}

    def record(self, detected_at_ms: int) -> str:
        """The payments.alerts value."""
        return json.dumps(self.as_dict(detected_at_ms), separators=(",", ":"))


# An alert's details key: the transactions that reached the fraud job behind its watermark
# within the rules' reach of the alert (late ones, which take part in no rule, and on-time ones
# it could not put in event-time order). The reconciliation explains by them (EXPLAINED_LATE)
# an alert the batch replay, in true event-time order, decides differently.
BEHIND_KEY = "behind_watermark_txn_ids"


def large_amount(txn: dict, params: FraudParams = DEFAULT_PARAMS) -> Alert | None:
    if txn["amount_cents"] < params.large_amount_cents:
        return None
    return Alert(LARGE_AMOUNT, txn["account_id"], (txn["txn_id"],), txn["event_time_ms"],
                 {"amount_cents": txn["amount_cents"], "currency": txn["currency"],
                  "threshold_cents": params.large_amount_cents})


def large_amount_sql(params: FraudParams, detected_at_ms_sql: str) -> tuple[str, str]:
    """:func:`large_amount` in Flink SQL, over the columns ``txn_id``, ``account_id``,
    ``amount_cents``, ``currency`` and ``event_time_ms``: (the condition, the alert's
    payments.alerts value). The value is :meth:`Alert.record` of the same alert, field for
    field (Flink's ``JSON_OBJECT`` orders keys by name), with ``alert_id`` as :func:`alert_id`
    computes it (SHA-256 of ``LARGE_AMOUNT|<txn_id>``, hex, first 32 characters). The fraud
    job sends these alerts from SQL, ahead of its keyed Python operator
    (jobs/streaming/fraud.py); tests/integration/test_fraud_job.py holds the two forms to the
    same records."""
    condition = f"amount_cents >= {params.large_amount_cents}"
    record = f"""JSON_OBJECT(
      'alert_id' VALUE SUBSTRING(SHA256(CONCAT('{LARGE_AMOUNT}|', txn_id)) FROM 1 FOR 32),
      'rule' VALUE '{LARGE_AMOUNT}', 'severity' VALUE '{SEVERITY[LARGE_AMOUNT]}',
      'account_id' VALUE account_id, 'txn_ids' VALUE JSON_ARRAY(txn_id),
      'event_time_ms' VALUE event_time_ms, 'detected_at_ms' VALUE {detected_at_ms_sql},
      'details' VALUE JSON_OBJECT('amount_cents' VALUE amount_cents, 'currency' VALUE currency,
                                  'threshold_cents' VALUE {params.large_amount_cents}))"""
    return condition, record


# --- the ordered rules -------------------------------------------------------------------------


def order_key(txn: dict) -> tuple[int, str]:
    """The order in which an account's transactions meet the rules."""
    return txn["event_time_ms"], txn["txn_id"]


@dataclass
class RuleState:
    """What an account's ordered rules remember: the transactions within the look-back, in
    order, as (event_time_ms, txn_id, kind, amount_cents), and the end of a VELOCITY silence.
    Empty (``recent == []`` and ``silent_until_ms is None``) for an idle account."""

    recent: list[tuple[int, str, str, int]] = field(default_factory=list)
    silent_until_ms: int | None = None

    def is_empty(self) -> bool:
        return not self.recent and self.silent_until_ms is None


def step(state: RuleState, txn: dict, profile: Profile,
         params: FraudParams = DEFAULT_PARAMS, silenced: list | None = None) -> list[Alert]:
    """Feed one accepted, on-time transaction (the next in :func:`order_key` order for its
    account) to the ordered rules; updates ``state``; returns its alerts, high severity first.

    ``silenced``: when given, the VELOCITY alert that only the silence held back is appended
    to it (the reconciliation asks what a side whose silence ended elsewhere would have seen).
    """
    t, txn_id, kind, amount = (txn["event_time_ms"], txn["txn_id"], txn["kind"],
                               txn["amount_cents"])
    account = txn["account_id"]
    recent = [r for r in state.recent if t - r[0] <= params.lookback_ms]
    alerts = []

    if kind == "purchase" and amount >= params.large_purchase_cents:
        small = None
        for r in recent:
            if (r[2] == "purchase" and r[3] < params.small_purchase_cents
                    and t - r[0] <= params.small_then_large_ms):
                small = r  # the most recent one wins: recent is in order
        if small is not None:
            alerts.append(Alert(SMALL_THEN_LARGE, account, (small[1], txn_id), t, {
                "small_amount_cents": small[3], "large_amount_cents": amount,
                "gap_ms": t - small[0]}))

    if (profile.risk_tier == "high" and profile.home_country is not None
            and txn["country"] != profile.home_country):
        alerts.append(Alert(FOREIGN_HIGH_RISK, account, (txn_id,), t, {
            "country": txn["country"], "home_country": profile.home_country,
            "risk_tier": profile.risk_tier, "profile_valid_from_ms": profile.valid_from_ms}))

    recent.append((t, txn_id, kind, amount))
    in_window = [r for r in recent if t - r[0] < params.velocity_window_ms]
    if len(in_window) >= params.velocity_count:
        fires = state.silent_until_ms is None or t >= state.silent_until_ms
        if fires or silenced is not None:
            velocity = Alert(VELOCITY, account, tuple(r[1] for r in in_window), t, {
                "count": len(in_window), "window_ms": params.velocity_window_ms})
            if fires:
                alerts.append(velocity)
                state.silent_until_ms = t + params.velocity_silence_ms
            else:
                silenced.append(velocity)

    state.recent = recent
    return alerts


def expire(state: RuleState, watermark_ms: int, window_ms: int,
           params: FraudParams = DEFAULT_PARAMS) -> None:
    """Forget what no on-time transaction can reach any more (an on-time transaction has an
    event time above watermark - window_ms): the state of an idle account goes to empty."""
    floor = watermark_ms - window_ms
    state.recent = [r for r in state.recent if r[0] >= floor - params.lookback_ms]
    if state.silent_until_ms is not None and state.silent_until_ms <= floor:
        state.silent_until_ms = None


def last_event_ms(state: RuleState, params: FraudParams = DEFAULT_PARAMS) -> int | None:
    """The event time of the newest transaction ``state`` still remembers (the one that began
    a VELOCITY silence counts too); :meth:`FraudParams.idle_after_ms` after it, :func:`expire`
    leaves the state empty. None for an empty state."""
    times = [r[0] for r in state.recent]
    if state.silent_until_ms is not None:
        times.append(state.silent_until_ms - params.velocity_silence_ms)
    return max(times, default=None)


def advance(state: RuleState, pending: list[dict], versions: dict[int, Profile] | None,
            watermark_ms: int, window_ms: int,
            params: FraudParams = DEFAULT_PARAMS) -> tuple[list[Alert], list[dict]]:
    """The watermark of an account's stream reached ``watermark_ms``: the buffered
    transactions at or before it meet the ordered rules in order, then what no on-time
    transaction can reach is forgotten. Returns (alerts, transactions still waiting).

    This is what the fraud job does on an event-time timer, so the stream's alerts are those
    of :func:`alerts_of` whenever transactions arrive within the watermark's bound."""
    ready, waiting = [], []
    for txn in pending:
        (ready if txn["event_time_ms"] <= watermark_ms else waiting).append(txn)
    alerts = []
    for txn in sorted(ready, key=order_key):
        alerts += step(state, txn, applicable_profile(versions, txn["event_time_ms"]), params)
    expire(state, watermark_ms, window_ms, params)
    return alerts, waiting


def alerts_of(txns, profiles: dict[str, dict[int, Profile]] | None = None,
              params: FraudParams = DEFAULT_PARAMS,
              states: dict[str, RuleState] | None = None,
              silenced: list | None = None) -> list[Alert]:
    """Every alert of a set of accepted, on-time transactions (the batch replay, and the
    reference the tests hold the job to): LARGE_AMOUNT per transaction, the ordered rules per
    account in :func:`order_key` order.

    ``states``: the accounts' rule states before these transactions (the state at the end of
    the previous interval, for a batch that runs interval by interval); updated in place, so
    afterwards it holds the state after them. Without it every account starts empty.
    ``silenced``: as for :func:`step`."""
    profiles = profiles or {}
    states = {} if states is None else states
    by_account: dict[str, list[dict]] = {}
    out = []
    for txn in txns:
        by_account.setdefault(txn["account_id"], []).append(txn)
        found = large_amount(txn, params)
        if found:
            out.append(found)
    for account, account_txns in by_account.items():
        state = states.setdefault(account, RuleState())
        for txn in sorted(account_txns, key=order_key):
            out += step(state, txn, applicable_profile(profiles.get(account),
                                                       txn["event_time_ms"]), params, silenced)
    return out


def state_to_json(state: RuleState) -> str:
    return json.dumps({"recent": state.recent, "silent_until_ms": state.silent_until_ms},
                      separators=(",", ":"))


def state_from_json(text: str) -> RuleState:
    d = json.loads(text)
    return RuleState([tuple(r) for r in d["recent"]], d["silent_until_ms"])
