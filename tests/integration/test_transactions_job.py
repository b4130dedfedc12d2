"""The transactions job on the real broker and cluster (`payline submit transactions`).

A fixed, hand-written data set with exact and conflicting duplicates, every error class,
out-of-order events inside the bound and a late event far behind the watermark. The expected
aggregates, DLQ entries and late records are computed here, from the data set, with plain
arithmetic; nothing of udfs/ or the job is used to compute them.

Lateness is made deterministic by sending in two phases: the late record goes out only after
the job has committed the aggregates of the windows it belongs behind.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import time
import urllib.request
from collections import defaultdict

import pytest

from payline.local import cluster
from payline.status import job_status
from runtime.registry import TRANSACTIONS
from tests.support.kafka_io import read_all
from tests.support.stack import (
    assert_state_uncompressed,
    cancel_job,
    flink_api,
    submit_job,
    wait_for,
)
from tests.support.txn_dataset import (
    A1,
    A2,
    A3,
    CRASH_TOPICS,
    PHASE_1,
    PHASE_2,
    T0,
    TOPICS,
    W,
    committed_aggregates,
    enc,
    expected_aggregates,
    outputs,
    run_dataset,
    send,
    topics_of,
    txn,
)

pytestmark = pytest.mark.integration

@pytest.fixture(scope="module")
def job(stack_conf, stack_cfg):
    job_id = submit_job(stack_conf, stack_cfg, "transactions", TOPICS, "it-tx")
    yield stack_cfg, job_id
    cancel_job(stack_cfg, job_id)


@pytest.fixture(scope="module")
def clean_run(job):
    cfg, _ = job
    return run_dataset(cfg, TOPICS)


def test_outputs_equal_the_independently_computed_ones(job, clean_run):
    cfg, job_id = job
    positions = clean_run
    expected = expected_aggregates()
    # no bad record failed or restarted the job
    assert flink_api(cfg, f"/jobs/{job_id}")["state"] == "RUNNING"
    assert not flink_api(cfg, f"/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"]

    # aggregates: exactly the expected ones, each once
    got = committed_aggregates(cfg)
    assert len(got) == len({k for k, _ in got}), "an aggregate was committed twice"
    assert dict(got) == expected

    # DLQ: every bad record by class and source position, and nothing else
    dlq = [json.loads(r.value) for r in read_all(cfg, TOPICS["dlq"])]
    got_dlq = {(d["error_class"], d["source_partition"], d["source_offset"]) for d in dlq}
    want_dlq = {(expect, *positions[label]) for label, _, _, expect in PHASE_1 + PHASE_2
                if expect not in ("accept", "accept-open", "duplicate", "late")}
    assert got_dlq == want_dlq
    assert len(dlq) == len(want_dlq)
    by_label = {label: value for label, _, value, _ in PHASE_1}
    for d in dlq:
        assert d["source_topic"] == TOPICS["transactions"]
        raw = (base64.b64decode(d["raw"]) if d["raw_encoding"] == "base64"
               else d["raw"].encode())
        label = next(lb for lb, p in positions.items()
                     if p == (d["source_partition"], d["source_offset"]))
        assert raw == by_label[label]
        assert d["error"]
    not_utf8 = next(d for d in dlq if (d["source_partition"], d["source_offset"])
                    == positions["not-utf8"])
    assert not_utf8["raw_encoding"] == "base64"

    # late: the one late transaction, as received, with the window it missed
    late = [json.loads(r.value) for r in read_all(cfg, TOPICS["late"])]
    assert len(late) == 1
    record = late[0]
    sent = json.loads(PHASE_2[0][2])
    assert {k: record[k] for k in sent} == sent
    assert record["window_start_ms"] == T0
    assert record["watermark_ms"] >= T0 + W - 1


def job_metrics(cfg, job_id) -> dict[str, float]:
    """Every metric of every vertex whose name ends in a payline counter, summed over subtasks."""
    totals: dict[str, float] = defaultdict(float)
    for v in flink_api(cfg, f"/jobs/{job_id}")["vertices"]:
        ids = [m["id"] for m in flink_api(cfg, f"/jobs/{job_id}/vertices/{v['id']}/metrics")]
        wanted = [i for i in ids if ".payline." in f".{i}"]
        if not wanted:
            continue
        path = f"/jobs/{job_id}/vertices/{v['id']}/metrics?get={','.join(wanted)}"
        for m in flink_api(cfg, path):
            name = m["id"].split("payline.", 1)[1]
            totals[name] += float(m["value"])
    return totals


def test_counters_are_visible_in_the_rest_api(job, clean_run):
    cfg, job_id = job
    # after the data test: 12 accepted are counted (11 in emitted windows, 1 late); the 3 in
    # still-open windows are counted when their windows close
    seen = {}

    def counted():
        seen.update(job_metrics(cfg, job_id))
        return seen.get("accepted") == 12 and seen

    try:
        metrics = wait_for(counted, 60, "the accepted counter to reach 12")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the job's payline metrics: {seen}") from None
    assert metrics["duplicates"] == 1
    assert metrics["late"] == 1
    assert metrics["error_class.MALFORMED.dlq"] == 3
    assert metrics["error_class.SCHEMA_VIOLATION.dlq"] == 3
    assert metrics["error_class.INVALID_VALUE.dlq"] == 2
    assert metrics["error_class.CONFLICTING_DUPLICATE.dlq"] == 1
    # the event-time lag is Flink's JVM gauge on the source (a Python gauge in thread mode
    # is called on the metric reporter's thread and crashed a TaskManager); payline status
    # reads it
    status = job_status(cfg, job_id, TRANSACTIONS.name)
    assert status["event_time_lag_ms"] is not None and status["event_time_lag_ms"] > 0, status

    # the same counters on the TaskManager's Prometheus endpoint
    def scraped(name: str, label: str = "") -> float:
        total, found = 0.0, False
        for port in cluster.prometheus_ports(cfg):
            with urllib.request.urlopen(f"http://{cfg.flink.host}:{port}/metrics",
                                        timeout=10) as r:
                for line in r.read().decode().splitlines():
                    metric = line.split("{", 1)[0].split(" ", 1)[0]
                    if metric.endswith(name) and label in line and not line.startswith("#"):
                        total += float(line.rsplit(" ", 1)[1])
                        found = True
        assert found, f"{name} {label} not on any Prometheus endpoint"
        return total

    assert scraped("_payline_accepted") == 12
    assert scraped("_payline_duplicates") == 1
    assert scraped("_payline_late") == 1
    assert scraped("_payline_error_class_dlq", 'error_class="MALFORMED"') == 3
    assert scraped("_payline_error_class_dlq", 'error_class="CONFLICTING_DUPLICATE"') == 1
    assert scraped("_watermarkLag") > 0


def test_the_state_files_are_uncompressed(job, clean_run):
    # set by the job itself: the dedup, the watermark per partition and the windows
    assert_state_uncompressed(*job)


def test_a_taskmanager_killed_mid_run_changes_no_committed_output(stack_conf, stack_cfg, job,
                                                                 clean_run):
    """kill -9 of the TaskManager after a checkpoint, more input while it is down, a new
    TaskManager: the job restores from the checkpoint and its read_committed outputs equal the
    clean run's record for record (nothing lost, nothing twice)."""
    cfg = stack_cfg
    job_id = submit_job(stack_conf, cfg, "transactions", CRASH_TOPICS, "it-crash")

    def completed_checkpoints() -> int:
        return flink_api(cfg, f"/jobs/{job_id}/checkpoints")["counts"]["completed"]

    def crash(when):
        if when is not None:
            # state to restore: two checkpoints after the first records were sent
            seen = completed_checkpoints()
            wait_for(lambda: completed_checkpoints() >= seen + 2, 60, "two checkpoints")
            pids = cluster.flink_pids(cfg)["taskmanager"]
            assert pids, "no TaskManager to kill"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
        else:
            cluster.taskmanager_start(cfg, log=lambda _: None)

    try:
        run_dataset(cfg, CRASH_TOPICS, crash)
        assert flink_api(cfg, f"/jobs/{job_id}")["state"] == "RUNNING"
        restarts = flink_api(cfg, f"/jobs/{job_id}/exceptions")["exceptionHistory"]["entries"]
        assert restarts, "the job never noticed the kill"
        assert outputs(cfg, CRASH_TOPICS) == outputs(cfg, TOPICS)
    finally:
        cancel_job(cfg, job_id)


H = 24 * 3600 * 1000  # the contract's default dedup horizon (conf/payline.toml)
HORIZON_TOPICS = topics_of("it.horizon")
FIRST = enc(txn("t-h-first", A1, 1000, T0 + 1000))
KEPT = txn("t-h-kept", A2, 2000, T0 + H - 30000)
HORIZON_1 = [
    ("first", A1, FIRST, "accept"),
    ("kept", A2, enc(KEPT), "accept"),
    # every partition past the first copy's event time plus the horizon (watermark = max - 5 s)
    *((f"adv-{a}", a, enc(txn(f"t-h-adv-{a}", a, 50, T0 + 1000 + H + 10000)), "accept-open")
      for a in (A1, A2, A3)),
]
HORIZON_2 = [
    # the same bytes as "first": its dedup state went when the watermark passed T0 + 1 s + H,
    # so it is a transaction again (accepted), and late: its window closed long ago
    ("first-again", A1, FIRST, "late"),
    # within the horizon of "kept" (whose state stays until T0 + 2H - 30 s): a conflict
    ("kept-conflict", A2, enc({**KEPT, "amount_cents": 2001}), "CONFLICTING_DUPLICATE"),
]


def test_dedup_state_goes_when_the_watermark_passes_the_horizon(stack_conf, stack_cfg):
    """docs/contract.md#deduplication: the dedup horizon is event time. A txn_id's state is
    cleared when the watermark passes its first copy's event time plus the horizon, not after a
    stretch of processing time (with a processing-time TTL of 24 h, "first-again" below would
    still find its state and be a silent duplicate), and not earlier ("kept-conflict" still
    finds its)."""
    cfg = stack_cfg
    job_id = submit_job(stack_conf, cfg, "transactions", HORIZON_TOPICS, "it-horizon")
    try:
        send(cfg, HORIZON_1, HORIZON_TOPICS)
        # both windows close only once every partition's watermark is past T0 + H + 5 s, and the
        # window operator comes after the dedup: its timer for "first" has fired by then
        closed = {f"{A1}|EUR|{T0}", f"{A2}|EUR|{T0 + H - W}"}
        wait_for(lambda: closed <= {k for k, _ in committed_aggregates(cfg, HORIZON_TOPICS)},
                 240, "the windows of 'first' and 'kept'")
        positions = send(cfg, HORIZON_2, HORIZON_TOPICS)
        wait_for(lambda: read_all(cfg, HORIZON_TOPICS["late"])
                 and read_all(cfg, HORIZON_TOPICS["dlq"]), 120, "the late and the DLQ record")
        time.sleep(2 * cfg.flink.checkpoint_interval_ms / 1000)  # anything extra shows now

        late = [json.loads(r.value) for r in read_all(cfg, HORIZON_TOPICS["late"])]
        assert [{k: r[k] for k in json.loads(FIRST)} for r in late] == [json.loads(FIRST)]
        assert late[0]["window_start_ms"] == T0
        assert late[0]["watermark_ms"] >= T0 + 1000 + H
        dlq = [json.loads(r.value) for r in read_all(cfg, HORIZON_TOPICS["dlq"])]
        assert [(d["error_class"], d["source_partition"], d["source_offset"]) for d in dlq] == [
            ("CONFLICTING_DUPLICATE", *positions["kept-conflict"])]
        aggregates = dict(committed_aggregates(cfg, HORIZON_TOPICS))
        assert aggregates[f"{A1}|EUR|{T0}"]["txn_count"] == 1
        assert flink_api(cfg, f"/jobs/{job_id}")["state"] == "RUNNING"
    finally:
        cancel_job(cfg, job_id)
