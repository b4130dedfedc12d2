"""The fraud job on the real broker and cluster (`payline submit fraud`).

1. A fixed, hand-written data set: every rule at and just past its thresholds, profile versions
   switching at ``valid_from_ms``, ties in event time, a retry, a conflicting copy, bad
   records and bad profiles. The expected alerts are derived here from the contract's wording
   with brute-force loops; nothing of udfs/ or the job computes them.
2. Generated traffic with a TaskManager killed mid-run, and the same traffic with a
   stop-with-savepoint and a restore into a new job: the distinct alert ids equal those of
   the batch replay (``udfs.fraud.alerts_of``), which test 1 ties to the contract.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections import defaultdict

import pytest

from payline.generator.send import producer
from payline.local import cluster
from tests.support.fraud_traffic import (
    DAY,
    T0,
    alerts_in,
    completed_checkpoints,
    enc,
    flush_records,
    generated,
    reference_alert_ids,
    send_records,
    topics_of,
    txn,
    wait_for_alerts,
)
from tests.support.kafka_io import account_on, create_topic, read_all
from tests.support.stack import (
    assert_state_uncompressed,
    cancel_job,
    flink_api,
    payline,
    submit_job,
    wait_for,
)
from udfs import fraud

pytestmark = pytest.mark.integration











def profile(account, home, tier, valid_from_ms):
    return {"account_id": account, "home_country": home, "risk_tier": tier,
            "valid_from_ms": valid_from_ms}


# --- the fixed data set --------------------------------------------------------------------------

H1, H2 = account_on(0, "h1"), account_on(1, "h2")
PROFILES = [  # (key, value, expected DLQ class or None)
    (H1, enc(profile(H1, "DE", "high", T0 - DAY)), None),
    (H1, enc(profile(H1, "DE", "low", T0 + 30000)), None),
    (H2, enc(profile(H2, "FR", "high", T0 + 20000)), None),
    ("acct-bad", enc(profile("acct-bad", "DE", "extreme", T0)), "INVALID_VALUE"),
    ("acct-bad2", b"not json", "MALFORMED"),
    ("acct-x", enc(profile("acct-y", "DE", "low", T0)), "INVALID_VALUE"),
    ("acct-z", enc({"account_id": "acct-z", "home_country": "DE", "risk_tier": "low"}),
     "SCHEMA_VIOLATION"),
]

VELOCITY_TXNS = [txn("acct-v", 1000 + i * 6000) for i in range(10)]  # 10th at 55 s fires
NEAR_VELOCITY = ([txn("acct-v2", 0)] + [txn("acct-v2", 50000 + i) for i in range(8)]
                 + [txn("acct-v2", 60000)])  # the one at 0 is exactly 60 s before: 9 in window
L1 = txn("acct-l1", 4000, 1_000_000)
L2 = txn("acct-l2", 4000, 999_999)
VALID = (
    VELOCITY_TXNS + [txn("acct-v", 58000), txn("acct-v", 115001)] + NEAR_VELOCITY
    + [txn("acct-s1", 2000, 99), txn("acct-s1", 62000, 50000),      # gap exactly 60 s
       txn("acct-s2", 2000, 100), txn("acct-s2", 3000, 50000),      # not small
       txn("acct-s3", 2000, 99), txn("acct-s3", 3000, 49999),       # not large
       txn("acct-s4", 2000, 99), txn("acct-s4", 62001, 50000),      # 1 ms too far
       L1, L2,
       txn(H1, 10000, country="FR"), txn(H1, 11000, country="DE"),
       txn(H1, 29999, country="FR"), txn(H1, 30000, country="FR"),  # v2 (low) from 30 s
       txn(H2, 19999, country="DE"), txn(H2, 20000, country="DE"),  # H2's profile from 20 s
       # ties at 5 s: the large one arrives first; order by txn_id decides
       txn("acct-tie", 5000, 60000, txn_id="tie-a"), txn("acct-tie", 5000, 50, txn_id="tie-b"),
       txn("acct-tie2", 5000, 60000, txn_id="tie2-b"),
       txn("acct-tie2", 5000, 50, txn_id="tie2-a")]
)
EXTRA = [  # (key, value, outcome), sent right after the copy they refer to
    (L1["account_id"], enc(L1), "duplicate"),
    (L2["account_id"], enc({**L2, "amount_cents": 1_000_000}), "CONFLICTING_DUPLICATE"),
    ("acct-l1", enc({**L1, "txn_id": "t-bad", "amount_cents": "lots"}), "SCHEMA_VIOLATION"),
]


def dataset() -> list[tuple[str, bytes]]:
    """Transactions in arrival order: by event time (stable, so the ties keep their list
    order), each extra record right after L1/L2."""
    out = []
    for t in sorted(VALID, key=lambda t: t["event_time_ms"]):
        out.append((t["account_id"], enc(t)))
        if t is L2:
            out += [(k, v) for k, v, _ in EXTRA]
    return out


def aid(rule, ids) -> str:
    return hashlib.sha256(f"{rule}|{','.join(ids)}".encode()).hexdigest()[:32]


def expected_alerts() -> dict[str, tuple]:
    """alert_id -> (rule, severity, account, txn_ids, event_time_ms), from the contract's
    wording, by brute force over the accepted transactions (VALID: the extras add none)."""
    out = {}

    def add(rule, severity, account, ids, t):
        out[aid(rule, ids)] = (rule, severity, account, list(ids), t)

    by_account = defaultdict(list)
    for t in VALID:
        by_account[t["account_id"]].append(t)
        if t["amount_cents"] >= 1_000_000:
            add("LARGE_AMOUNT", "high", t["account_id"], [t["txn_id"]], t["event_time_ms"])
    versions = defaultdict(list)
    for key, value, bad in PROFILES:
        if bad is None:
            p = json.loads(value)
            versions[key].append(p)
    for account, txns in by_account.items():
        seq = sorted(txns, key=lambda t: (t["event_time_ms"], t["txn_id"]))
        quiet_until = None
        for i, t in enumerate(seq):
            now = t["event_time_ms"]
            before = seq[:i]
            if t["kind"] == "purchase" and t["amount_cents"] >= 50000:
                smalls = [s for s in before if s["kind"] == "purchase"
                          and s["amount_cents"] < 100 and now - s["event_time_ms"] <= 60000]
                if smalls:
                    add("SMALL_THEN_LARGE", "high", account,
                        [smalls[-1]["txn_id"], t["txn_id"]], now)
            applying = [p for p in versions[account] if p["valid_from_ms"] <= now]
            if applying:
                p = max(applying, key=lambda p: p["valid_from_ms"])
                if p["risk_tier"] == "high" and t["country"] != p["home_country"]:
                    add("FOREIGN_HIGH_RISK", "high", account, [t["txn_id"]], now)
            window = [s for s in seq[:i + 1] if now - 60000 < s["event_time_ms"] <= now]
            if len(window) >= 10 and (quiet_until is None or now >= quiet_until):
                add("VELOCITY", "medium", account, [s["txn_id"] for s in window], now)
                quiet_until = now + 60000
    return out


# --- running the job -----------------------------------------------------------------------------


def produce(cfg, topic, records) -> None:
    prod = producer(cfg.kafka.bootstrap)
    for key, value in records:
        prod.produce(topic, key=key.encode(), value=value)
        prod.flush(30)  # one at a time: arrival order is the list's order




def test_alerts_equal_the_independently_computed_ones(stack_conf, stack_cfg):
    cfg, topics = stack_cfg, topics_of("it.fraud")
    payline(stack_conf, "up")
    for name in topics.values():
        create_topic(cfg, name, 3)
    produce(cfg, topics["accounts"], [(k, v) for k, v, _ in PROFILES])
    produce(cfg, topics["transactions"], dataset())
    # bounded: reads to the current end, and the end of input moves the watermark past all
    submit_job(stack_conf, cfg, "fraud", topics, "it-fraud", "--bounded", "--attached")

    alerts = alerts_in(cfg, topics["alerts"])
    got = {a["alert_id"]: (a["rule"], a["severity"], a["account_id"], a["txn_ids"],
                           a["event_time_ms"]) for a in alerts}
    want = expected_alerts()
    assert got == want
    assert {r for r, *_ in want.values()} == set(fraud.RULES)  # every rule is exercised
    for a in alerts:
        assert set(a) == set(fraud.ALERT_FIELDS)
        assert a["detected_at_ms"] > T0
    details = {a["rule"]: a["details"] for a in alerts}
    assert details["LARGE_AMOUNT"] == {"amount_cents": 1_000_000, "currency": "EUR",
                                       "threshold_cents": 1_000_000}
    # LARGE_AMOUNT is built in SQL (udfs.fraud.large_amount_sql): the record that
    # udfs.fraud.Alert.record writes for the same alert, alert_id included, value for value
    # and type for type (Flink's JSON_OBJECT orders the keys by name)
    large = [a for a in alerts if a["rule"] == "LARGE_AMOUNT"]
    assert large
    for a in large:
        alert = fraud.Alert(a["rule"], a["account_id"], tuple(a["txn_ids"]),
                            a["event_time_ms"], a["details"])
        assert (json.dumps(a, sort_keys=True)
                == json.dumps(json.loads(alert.record(a["detected_at_ms"])), sort_keys=True))
    assert details["SMALL_THEN_LARGE"] in (
        {"small_amount_cents": 99, "large_amount_cents": 50000, "gap_ms": 60000},
        {"small_amount_cents": 50, "large_amount_cents": 60000, "gap_ms": 0})

    # bad profiles: in the DLQ with their class and source position, nothing else there
    dlq = [json.loads(r.value) for r in read_all(cfg, topics["dlq"])]
    assert sorted(d["error_class"] for d in dlq) == sorted(
        bad for _, _, bad in PROFILES if bad)
    assert {d["source_topic"] for d in dlq} == {topics["accounts"]}
    assert all(d["error"] and d["raw"] for d in dlq)


# --- generated traffic: crash and savepoint ----------------------------------------------------















def test_a_taskmanager_killed_mid_run_loses_no_alert(stack_conf, stack_cfg):
    cfg, topics = stack_cfg, topics_of("it.fraud-crash")
    first, second = generated(topics)
    want = reference_alert_ids(first + second)
    assert len(want) > 50
    job_id = submit_job(stack_conf, cfg, "fraud", topics, "it-fraud-crash")
    try:
        send_records(cfg, first)
        seen = completed_checkpoints(cfg, job_id)
        wait_for(lambda: completed_checkpoints(cfg, job_id) >= seen + 2, 60, "two checkpoints")
        assert alerts_in(cfg, topics["alerts"]), "no alert before the kill"
        for pid in cluster.flink_pids(cfg)["taskmanager"]:
            os.kill(pid, signal.SIGKILL)
        send_records(cfg, second + flush_records(topics))
        cluster.taskmanager_start(cfg, log=lambda _: None)
        assert wait_for_alerts(cfg, topics["alerts"], want) == want
        restarts = flink_api(cfg, f"/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"]
        assert restarts, "the job never noticed the kill"
    finally:
        cancel_job(cfg, job_id)


def test_a_savepoint_restored_into_a_new_job_gives_the_uninterrupted_alerts(stack_conf,
                                                                            stack_cfg):
    cfg, topics = stack_cfg, topics_of("it.fraud-savepoint")
    first, second = generated(topics)
    want = reference_alert_ids(first + second)
    job_id = submit_job(stack_conf, cfg, "fraud", topics, "it-fraud-savepoint")
    send_records(cfg, first)
    seen = completed_checkpoints(cfg, job_id)
    wait_for(lambda: completed_checkpoints(cfg, job_id) >= seen + 1, 60, "a checkpoint")
    before = {a["alert_id"] for a in alerts_in(cfg, topics["alerts"])}
    assert before and before < want  # mid-stream: some alerts out, others still to come
    # the dedup, the watermark per partition and the rules write uncompressed files
    assert_state_uncompressed(cfg, job_id)

    target = cfg.paths.checkpoints_dir / "it-fraud-savepoints"
    trigger = flink_api(cfg, f"/jobs/{job_id}/stop", "POST",
                   {"targetDirectory": str(target), "drain": False})["request-id"]
    status = wait_for(lambda: (lambda s: s["status"]["id"] == "COMPLETED" and s)(
        flink_api(cfg, f"/jobs/{job_id}/savepoints/{trigger}")), 120, "the savepoint")
    savepoint = status["operation"]["location"]
    assert flink_api(cfg, f"/jobs/{job_id}")["state"] == "FINISHED"

    send_records(cfg, second + flush_records(topics))
    new_job = submit_job(stack_conf, cfg, "fraud", topics, "it-fraud-savepoint",
                     "--from-savepoint", savepoint)
    try:
        assert wait_for_alerts(cfg, topics["alerts"], want) == want
        # restored, not recomputed from scratch: the new job started from the savepoint
        restored = flink_api(cfg, f"/jobs/{new_job}/checkpoints")["latest"]["restored"]
        assert restored and restored["external_path"].rstrip("/").endswith(
            savepoint.rstrip("/").rsplit("/", 1)[-1])
    finally:
        cancel_job(cfg, new_job)
