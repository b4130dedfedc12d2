"""Contract-conformant payment traffic, with every kind of trouble the pipeline must handle.

:func:`plan` is a pure function of the options: the same options and seed give the same records
byte for byte. Event times follow a schedule (``rate_per_s``, spikes) that starts at
``start_ms``, not the wall clock; :func:`send` paces the sends to the same schedule (or sends
as fast as it can with ``max_speed``).

Categories (the manifest's ``category``):

* ``profile``: an account profile on ``payments.accounts``;
* ``valid``: an accepted transaction (``out_of_order`` true when its event time lags the
  schedule by up to ``out_of_order_ms``, inside the watermark bound);
* ``duplicate``: a producer retry, the exact bytes of an earlier valid record (``of_seq``);
* ``conflicting_duplicate``: an earlier valid ``txn_id`` with one other field changed;
* ``late``: valid, but ``late_by_ms`` behind the schedule, far behind any watermark;
* ``malformed`` / ``schema_violation`` / ``invalid_value``: breaks exactly the rule named by
  ``field`` and ``rule``.
"""

from __future__ import annotations

import base64
import json
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from udfs.contract import CHANNELS, DEFAULT_CURRENCIES, FIELD_NAMES

COUNTRIES = ("US", "GB", "DE", "FR", "NL", "SE", "NO", "DK", "PL", "IN", "BR", "MX", "SG", "JP",
             "CH", "CA", "AU")
HOME_CURRENCY = {"US": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "NL": "EUR", "SE": "SEK",
                 "NO": "NOK", "DK": "DKK", "PL": "PLN", "IN": "INR", "BR": "BRL", "MX": "MXN",
                 "SG": "SGD", "JP": "JPY", "CH": "CHF", "CA": "CAD", "AU": "AUD"}
RISK_TIERS = ("low", "medium", "high")

CATEGORIES = ("profile", "valid", "duplicate", "conflicting_duplicate", "late", "malformed",
              "schema_violation", "invalid_value")
BAD_CATEGORIES = ("malformed", "schema_violation", "invalid_value")


@dataclass(frozen=True)
class Spike:
    """Rate times ``factor`` for ``duration_s`` seconds from ``at_s`` seconds into the schedule."""

    factor: float
    duration_s: float
    at_s: float

    @classmethod
    def parse(cls, text: str) -> Spike:
        """'10x:10s@30s' -> Spike(10, 10, 30). Raises ValueError with the expected form."""
        try:
            factor, rest = text.split("x:", 1)
            duration, at = rest.split("@", 1)
            spike = cls(float(factor), float(duration.rstrip("s")), float(at.rstrip("s")))
        except ValueError:
            raise ValueError(f"--spike: expected FACTORx:DURATIONs@STARTs, got {text!r}") from None
        if spike.factor <= 0 or spike.duration_s <= 0 or spike.at_s < 0:
            raise ValueError(f"--spike: factor and duration must be > 0, start >= 0: {text!r}")
        return spike


@dataclass(frozen=True)
class Options:
    seed: int = 42
    start_ms: int = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    rate_per_s: float = 1000.0
    count: int | None = 10_000
    duration_s: float | None = None
    accounts: int = 200
    merchants: int = 50
    spikes: tuple[Spike, ...] = ()
    out_of_order_ms: int = 4000
    out_of_order_fraction: float = 0.2
    duplicate_fraction: float = 0.01
    conflicting_duplicate_fraction: float = 0.002
    late_fraction: float = 0.002
    late_by_ms: int = 600_000
    late_after: int = 1000
    malformed_fraction: float = 0.002
    schema_violation_fraction: float = 0.002
    invalid_value_fraction: float = 0.002
    large_amount_fraction: float = 0.001
    high_risk_account_fraction: float = 0.05
    currencies: tuple[str, ...] = tuple(DEFAULT_CURRENCIES)
    txn_topic: str = "payments.transactions"
    accounts_topic: str = "payments.accounts"


@dataclass(slots=True)
class Record:
    seq: int
    topic: str
    key: bytes
    value: bytes
    category: str
    schedule_s: float  # when to send it, seconds after the start of the run
    detail: dict = field(default_factory=dict)

    def manifest_entry(self) -> dict:
        try:
            value, value_b64 = self.value.decode("utf-8"), None
        except UnicodeDecodeError:
            value, value_b64 = None, base64.b64encode(self.value).decode()
        entry = {"seq": self.seq, "topic": self.topic, "key": self.key.decode(),
                 "category": self.category, "value": value}
        if value_b64 is not None:
            entry["value_b64"] = value_b64
        entry.update(self.detail)
        return entry


def _dumps(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class _Accounts:
    def __init__(self, rng: random.Random, opts: Options):
        self.ids = [f"acct-{i:06d}" for i in range(opts.accounts)]
        self.home = [rng.choice(COUNTRIES) for _ in self.ids]
        self.risk = [
            "high" if rng.random() < opts.high_risk_account_fraction
            else rng.choice(("low", "low", "low", "medium"))
            for _ in self.ids
        ]
        allowed = set(opts.currencies)
        self.currency = [
            HOME_CURRENCY[c] if HOME_CURRENCY[c] in allowed else opts.currencies[0]
            for c in self.home
        ]


def _amount(rng: random.Random, opts: Options) -> int:
    if rng.random() < opts.large_amount_fraction:
        return rng.randint(1_000_000, 5_000_000)
    # Log-uniform from 50 cents to 2 000.00: many small payments, few large ones.
    return max(1, int(10 ** rng.uniform(1.7, 5.3)))


# Each bad variant breaks exactly one rule: (category, field, rule, mutate(txn_dict) -> bytes).
def _bad_variants() -> list[tuple[str, str | None, str, object]]:
    def with_(name, value):
        def mutate(txn):
            t = dict(txn)
            t[name] = value
            return _dumps(t)
        return mutate

    def without(name):
        def mutate(txn):
            return _dumps({k: v for k, v in txn.items() if k != name})
        return mutate

    def not_utf8(txn):
        return _dumps(txn).replace(b'"merchant_id":"', b'"merchant_id":"\xff\xfe', 1)

    def truncated(txn):
        body = _dumps(txn)
        return body[: len(body) // 2]

    def array(txn):
        return _dumps([txn])

    def oversize(txn):
        return _dumps(dict(txn, note="x" * 65536))

    def nan_token(txn):
        return _dumps(txn).replace(b'"amount_cents":' + str(txn["amount_cents"]).encode(),
                                   b'"amount_cents":NaN', 1)

    return [
        ("malformed", None, "utf8", not_utf8),
        ("malformed", None, "json", truncated),
        ("malformed", None, "object", array),
        ("malformed", None, "size", oversize),
        ("malformed", None, "json", nan_token),
        ("schema_violation", "amount_cents", "type", with_("amount_cents", "1234")),
        ("schema_violation", "amount_cents", "type", with_("amount_cents", 12.5)),
        ("schema_violation", "amount_cents", "type", with_("amount_cents", True)),
        ("schema_violation", "event_time_ms", "type", with_("event_time_ms", "1767225600000")),
        ("schema_violation", "txn_id", "type", with_("txn_id", 12345)),
        ("schema_violation", "currency", "type", with_("currency", None)),
        ("schema_violation", "country", "required", without("country")),
        ("schema_violation", "kind", "required", without("kind")),
        ("invalid_value", "txn_id", "pattern", with_("txn_id", "t" * 65)),
        ("invalid_value", "account_id", "pattern", with_("account_id", "acct 000001")),
        ("invalid_value", "merchant_id", "pattern", with_("merchant_id", "")),
        ("invalid_value", "amount_cents", "range", with_("amount_cents", 0)),
        ("invalid_value", "amount_cents", "range", with_("amount_cents", 1_000_000_000_001)),
        ("invalid_value", "currency", "allow-list", with_("currency", "XXX")),
        ("invalid_value", "kind", "allow-list", with_("kind", "chargeback")),
        ("invalid_value", "event_time_ms", "range", with_("event_time_ms", 946_684_799_999)),
        ("invalid_value", "channel", "allow-list", with_("channel", "fax")),
        ("invalid_value", "country", "pattern", with_("country", "usa")),
    ]


def _schedule(opts: Options) -> Iterator[float]:
    """Seconds after the start at which each transaction is due (its nominal event time)."""
    t = 0.0
    while True:
        yield t
        factor = 1.0
        for s in opts.spikes:
            if s.at_s <= t < s.at_s + s.duration_s:
                factor *= s.factor
        t += 1.0 / (opts.rate_per_s * factor)


def plan(opts: Options) -> Iterator[Record]:
    """Every record to send, in send order: first one profile per account, then transactions."""
    rng = random.Random(opts.seed)
    accounts = _Accounts(rng, opts)
    seq = 0
    for i, acct in enumerate(accounts.ids):
        profile = {"account_id": acct, "home_country": accounts.home[i],
                   "risk_tier": accounts.risk[i], "valid_from_ms": opts.start_ms - 86_400_000}
        yield Record(seq, opts.accounts_topic, acct.encode(), _dumps(profile), "profile", 0.0)
        seq += 1

    variants = {c: [v for v in _bad_variants() if v[0] == c] for c in BAD_CATEGORIES}
    thresholds = []
    acc = 0.0
    for cat, frac in (("duplicate", opts.duplicate_fraction),
                      ("conflicting_duplicate", opts.conflicting_duplicate_fraction),
                      ("late", opts.late_fraction),
                      ("malformed", opts.malformed_fraction),
                      ("schema_violation", opts.schema_violation_fraction),
                      ("invalid_value", opts.invalid_value_fraction)):
        acc += frac
        thresholds.append((acc, cat))
    recent: deque[tuple[int, dict, bytes]] = deque(maxlen=1000)  # (seq, txn, value) of valid ones
    run_id = f"{opts.start_ms // 1000:x}{opts.seed:x}"
    n = 0
    for t in _schedule(opts):
        if opts.count is not None and n >= opts.count:
            return
        if opts.duration_s is not None and t >= opts.duration_s:
            return
        pos_ms = opts.start_ms + int(t * 1000)
        roll = rng.random()
        category = "valid"
        for limit, cat in thresholds:
            if roll < limit:
                category = cat
                break
        if category in ("duplicate", "conflicting_duplicate") and not recent:
            category = "valid"
        if category == "late" and (n < opts.late_after
                                   or pos_ms - opts.late_by_ms < 946_684_800_000):
            category = "valid"

        if category == "duplicate":
            of_seq, txn, value = recent[rng.randrange(len(recent))]
            rec = Record(seq, opts.txn_topic, txn["account_id"].encode(), value, category, t,
                         {"txn_id": txn["txn_id"], "of_seq": of_seq})
        elif category == "conflicting_duplicate":
            of_seq, txn, _ = recent[rng.randrange(len(recent))]
            changed = dict(txn, amount_cents=txn["amount_cents"] + rng.randint(1, 999))
            rec = Record(seq, opts.txn_topic, txn["account_id"].encode(), _dumps(changed),
                         category, t, {"txn_id": txn["txn_id"], "of_seq": of_seq,
                                       "field": "amount_cents"})
        else:
            a = rng.randrange(len(accounts.ids))
            country = accounts.home[a] if rng.random() < 0.95 else rng.choice(COUNTRIES)
            currency = accounts.currency[a] if rng.random() < 0.9 else rng.choice(opts.currencies)
            event_time = pos_ms
            out_of_order = False
            if category == "late":
                event_time = pos_ms - opts.late_by_ms
            elif opts.out_of_order_ms and rng.random() < opts.out_of_order_fraction:
                event_time = pos_ms - rng.randint(1, opts.out_of_order_ms)
                out_of_order = True
            txn = {
                "txn_id": f"t{run_id}-{n:09d}",
                "account_id": accounts.ids[a],
                "merchant_id": f"m-{rng.randrange(opts.merchants):05d}",
                "amount_cents": _amount(rng, opts),
                "currency": currency,
                "kind": "refund" if rng.random() < 0.05 else "purchase",
                "event_time_ms": event_time,
                "channel": rng.choice(CHANNELS),
                "country": country,
            }
            assert tuple(txn) == FIELD_NAMES
            key = txn["account_id"].encode()
            if category in BAD_CATEGORIES:
                cat, fld, rule, mutate = rng.choice(variants[category])
                detail = {"rule": rule} if fld is None else {"field": fld, "rule": rule}
                rec = Record(seq, opts.txn_topic, key, mutate(txn), category, t, detail)
            else:
                value = _dumps(txn)
                detail = {"txn_id": txn["txn_id"]}
                if category == "late":
                    detail["late_by_ms"] = opts.late_by_ms
                elif out_of_order:
                    detail["out_of_order"] = True
                rec = Record(seq, opts.txn_topic, key, value, category, t, detail)
                if category == "valid":
                    recent.append((seq, txn, value))
        yield rec
        seq += 1
        n += 1
