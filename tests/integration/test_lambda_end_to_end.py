"""Both layers on the real stack: generated traffic (duplicates, conflicting copies, bad and late
records) through the transactions and fraud jobs and the archiver, then the reconciliation of
the closed windows: nothing unexplained, late data explained, the accounting identity holds."""

from __future__ import annotations

import io
import json
import time

import pyarrow.parquet as pq
import pytest

from jobs import archiver
from jobs.batch import reconcile as job
from payline.flink.rest import FlinkRest
from payline.generator import plan as generator
from payline.generator.send import send
from tests.support.kafka_io import read_all
from tests.support.stack import cancel_job, payline, submit_job, wait_for
from udfs import reconcile

pytestmark = pytest.mark.integration

PREFIX = "e2e.payments"
TOPICS = {k: f"{PREFIX}.{v}" for k, v in (
    ("transactions", "transactions"), ("accounts", "accounts"), ("aggregates", "aggregates"),
    ("late", "late"), ("dlq", "dlq"), ("alerts", "alerts"))}
W = 60_000
LATE_BY = 300_000


def archiver_overrides() -> list[str]:
    out = [f"--set=topics.{k}={v}" for k, v in TOPICS.items()]
    return out + [r"--set=archiver.topic_pattern=^e2e\.payments\..*",
                  "--set=archiver.group_id=it-e2e", "--set=archiver.flush_interval_ms=1000"]


def send_late_behind_a_watermark(cfg, opts, job_id: str) -> dict[str, int]:
    """``generator.plan(opts)`` to Kafka at full speed, except that the first late record waits
    until the transactions job has a watermark. Whether a record is late is decided against
    the watermark when it arrives. Sent in one burst, all 6 000 records can pass the source
    before its first periodic watermark (200 ms), and then none is late (the test failed so
    once the source no longer called Python per record). Returns the records per category."""
    waited = False

    def hold(rec, prod):
        nonlocal waited
        if rec.category == "late" and not waited:
            assert prod.flush(60) == 0, "the records before the first late one were not sent"
            wait_for(lambda: has_watermark(cfg, job_id), 60,
                     "the transactions job's first watermark")
            waited = True

    report = send(cfg.kafka.bootstrap, opts, max_speed=True, stream=io.StringIO(), hold=hold)
    assert waited, "the plan had no late record"
    return report.counts


def has_watermark(cfg, job_id: str) -> bool:
    """True once an operator after the transactions job's source has received a watermark
    (Flink reports Long.MIN_VALUE before the first one)."""
    rest = FlinkRest.of(cfg)
    job = rest.job(job_id)
    for vertex in job.get("vertices", [])[1:]:
        for mark in rest.get(f"/jobs/{job_id}/vertices/{vertex['id']}/watermarks"):
            if int(float(mark["value"])) > -2**63:
                return True
    return False


def test_reconciliation_of_both_streaming_jobs_leaves_nothing_unexplained(
        stack_conf, stack_cfg, spark):
    cfg = stack_cfg
    jobs = [submit_job(stack_conf, cfg, job, TOPICS, f"it-e2e-{job}")
            for job in ("transactions", "fraud")]
    payline(stack_conf, *archiver_overrides(), "archiver", "start")
    try:
        start_ms = (int(time.time() * 1000) // W) * W
        opts = generator.Options(
            seed=5, start_ms=start_ms, rate_per_s=25, count=6000, accounts=60,
            late_fraction=0.003, late_by_ms=LATE_BY, late_after=500,
            txn_topic=TOPICS["transactions"], accounts_topic=TOPICS["accounts"])
        counts = send_late_behind_a_watermark(cfg, opts, jobs[0])
        assert counts.get("late", 0) > 0
        last_ms = start_ms + int(opts.count / opts.rate_per_s * 1000)
        # windows the stream has closed: end at or before watermark + 1 (watermark = newest
        # event - out-of-orderness - 1 on every partition)
        end_ms = (last_ms - cfg.event_time.out_of_orderness_ms) // W * W - W
        begin_ms = (start_ms - LATE_BY) // W * W

        def committed_and_archived():
            for key in ("aggregates", "late", "dlq"):
                committed = len(read_all(cfg, TOPICS[key]))
                if not committed or archiver.read_lake(cfg, TOPICS[key]).num_rows < committed:
                    return False
            alerts = len(read_all(cfg, TOPICS["alerts"]))
            return alerts and archiver.read_lake(cfg, TOPICS["alerts"]).num_rows >= alerts

        wait_for(committed_and_archived, 240, "the stream's outputs in the lake", every_s=3)
        time.sleep(3 * cfg.flink.checkpoint_interval_ms / 1000)
        wait_for(committed_and_archived, 120, "the last commits in the lake", every_s=3)
    finally:
        payline(stack_conf, "archiver", "stop")
        for job_id in jobs:
            cancel_job(cfg, job_id)

    e2e_cfg = cfg.replace(topics=type(cfg.topics)(**{**cfg.topics.by_key(), **TOPICS}))
    results = job.run(e2e_cfg, begin_ms, end_ms, spark)
    s = results["summary"]
    assert s["unexplained"] == 0, s
    assert s["aggregates"].get(reconcile.EXPLAINED_LATE, 0) > 0, s
    assert s["aggregates"].get(reconcile.MATCH, 0) > 10, s
    assert s["accounting"]["holds"], s
    assert s["accounting"]["duplicates"] > 0 and s["accounting"]["dlq"] > 0, s
    assert s["alerts"].get(reconcile.MATCH, 0) > 0, s
    # the analyst report of the run, with the same headline
    page = json.loads((results["report"].parent / "summary.json").read_text())
    assert page["headline"]["unexplained"] == 0 and page["headline"]["accounting_holds"]
    assert sum(w["batch_txn_count"] for w in page["windows"]) == s["accounting"]["accepted"]
    # EXPLAINED_LATE rows hold exactly: the stream's aggregate plus its late records of the
    # window is the batch's, recomputed here field by field
    rows = pq.read_table(results["out_dir"] / "aggregates.parquet").to_pylist()
    explained = [r for r in rows if r["reconciliation_class"] == reconcile.EXPLAINED_LATE]
    for r in explained:
        stream, late, batch = r["stream"], r["late"], r["batch"]
        assert late, r
        for field in ("txn_count", "purchase_cents", "refund_cents"):
            added = sum(t["amount_cents"] for t in late if field.startswith(t["kind"]))
            count = len(late) if field == "txn_count" else added
            assert (stream[field] if stream else 0) + count == batch[field], r
