"""The fraud job's traffic in tests: generated records split in two, a flush past every window,
sending them, the alerts committed, and the brute-force reference of the whole data set (the
batch replay: validation and dedup in send order, then udfs.fraud.alerts_of)."""

from __future__ import annotations

import json
import time
from collections import defaultdict

from payline.generator import plan as generator
from payline.generator.send import producer
from tests.support.kafka_io import account_on, read_all
from tests.support.stack import flink_api, wait_for
from udfs import contract, fraud, semantics

T0 = 1767225600000  # 2026-01-01T00:00:00Z


DAY = 86_400_000


def topics_of(prefix: str) -> dict[str, str]:
    return {k: f"{prefix}.{k}" for k in ("transactions", "accounts", "alerts", "dlq")}


def enc(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


TXN_SEQ = iter(range(10**6))


def txn(account, t, amount=1000, kind="purchase", country="DE", txn_id=None):
    return {"txn_id": txn_id or f"t-{account}-{next(TXN_SEQ):04d}", "account_id": account,
            "merchant_id": "m-1", "amount_cents": amount, "currency": "EUR", "kind": kind,
            "event_time_ms": T0 + t, "channel": "web", "country": country}


def alerts_in(cfg, topic) -> list[dict]:
    return [json.loads(r.value) for r in read_all(cfg, topic)]


GEN = generator.Options(seed=11, count=3000, accounts=40, late_fraction=0.0,
                        large_amount_fraction=0.01, high_risk_account_fraction=0.3)


def generated(topics) -> tuple[list, list]:
    """The generator's records for ``topics``, split in two halves (profiles first)."""
    opts = generator.Options(**{**GEN.__dict__, "txn_topic": topics["transactions"],
                                "accounts_topic": topics["accounts"]})
    records = list(generator.plan(opts))
    half = len(records) // 2
    return records[:half], records[half:]


def flush_records(topics) -> list:
    """One transaction per partition 10 minutes after everything else: the watermark then
    passes every generated transaction (no alert: single, small, unknown accounts)."""
    last = T0 + 3_600_000
    return [generator.Record(0, topics["transactions"], account_on(p, "flush").encode(),
                             enc(txn(account_on(p, "flush"), last - T0 + p)), "flush", 0.0)
            for p in range(3)]


def send_records(cfg, records) -> None:
    prod = producer(cfg.kafka.bootstrap)
    for r in records:
        prod.produce(r.topic, key=r.key, value=r.value)
        prod.poll(0)
    assert prod.flush(60) == 0


def reference_alert_ids(records) -> set[str]:
    """The batch replay: validation and dedup in (partition, offset) order = send order per
    key, then udfs.fraud.alerts_of."""
    profiles, first, accepted = defaultdict(dict), {}, []
    for r in records:
        if r.topic.endswith("accounts"):
            p = contract.validate_profile(r.value, r.key)
            if isinstance(p, contract.ValidProfile):
                v = p.profile
                profiles[v["account_id"]][v["valid_from_ms"]] = fraud.Profile(
                    v["valid_from_ms"], v["home_country"], v["risk_tier"])
            continue
        v = contract.validate(r.value)
        if not v.ok:
            continue
        t = v.txn
        seen = first.setdefault(t["txn_id"], None)
        if seen is None:
            first[t["txn_id"]] = (semantics.fingerprint(t), t["event_time_ms"])
        if semantics.dedup_decision(seen, t, DAY) == semantics.ACCEPTED:
            accepted.append(t)
    return {a.alert_id for a in fraud.alerts_of(accepted, profiles)}


def wait_for_alerts(cfg, topic, want: set[str], timeout_s=240) -> set[str]:
    got: set[str] = set()

    def complete():
        got.clear()
        got.update(a["alert_id"] for a in alerts_in(cfg, topic))
        return want <= got

    try:
        wait_for(complete, timeout_s, "every expected alert", every_s=3)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {len(want - got)} of {len(want)} missing") from None
    time.sleep(3)  # anything extra would show now
    return {a["alert_id"] for a in alerts_in(cfg, topic)}


def completed_checkpoints(cfg, job_id) -> int:
    return flink_api(cfg, f"/jobs/{job_id}/checkpoints")["counts"]["completed"]
