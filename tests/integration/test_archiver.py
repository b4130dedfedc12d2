"""The raw-log archiver against the real broker, killed with SIGKILL while it works.

Traffic: plain records (with null keys and a tombstone), committed transactions and aborted
transactions, on two topics matching the archiver's pattern and one that does not match. The
archiver is started, killed (kill -9) after it has written some files while traffic still
flows, and started again. Afterwards the lake holds every committed record exactly once, keyed
on (topic, partition, offset), with its key, value and timestamp, and nothing else: no aborted
record, no record of the other topic, no temporary file.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import pyarrow.parquet as pq
import pytest

from jobs import archiver
from payline.generator.send import producer
from payline.local.archiver_proc import archiver_paths
from tests.support.kafka_io import create_topic, read_all
from tests.support.stack import payline, wait_for

pytestmark = pytest.mark.integration

TOPICS = {"it.arch.alpha": 3, "it.arch.beta": 1}
OTHER = "it.other.gamma"
PATTERN = r"^it\.arch\..*"


def overrides():
    return ["--set", f"archiver.topic_pattern={PATTERN}", "--set", "archiver.flush_records=150",
            "--set", "archiver.flush_interval_ms=300", "--set", "archiver.group_id=it-archiver"]


def send_batch(cfg, batch: int, aborted: str) -> None:
    """Plain records on both topics and the other one, then one committed and one aborted
    transaction."""
    prod = producer(cfg.kafka.bootstrap)
    for i in range(200):
        key = None if i % 7 == 0 else f"k{i % 11}".encode()
        value = None if i % 50 == 49 else f"plain-{batch}-{i}".encode()
        prod.produce("it.arch.alpha", key=key, value=value)
        if i % 4 == 0:
            prod.produce("it.arch.beta", key=b"b", value=f"beta-{batch}-{i}".encode())
        if i % 10 == 0:
            prod.produce(OTHER, key=b"o", value=b"not archived")
    prod.flush(30)
    tx = producer(cfg.kafka.bootstrap, **{"transactional.id": f"it-arch-{uuid.uuid4()}"})
    tx.init_transactions(30)
    tx.begin_transaction()
    for i in range(40):
        tx.produce("it.arch.alpha", key=f"t{i}".encode(), value=f"committed-{batch}-{i}".encode())
    tx.commit_transaction(30)
    tx.begin_transaction()
    for i in range(40):
        tx.produce("it.arch.alpha", key=f"t{i}".encode(), value=aborted.encode())
        tx.produce("it.arch.beta", key=b"b", value=aborted.encode())
    tx.flush(30)
    tx.abort_transaction(30)


def archiver_pid(cfg) -> int:
    pid_file, _ = archiver_paths(cfg)
    return int(pid_file.read_text().split()[0])


def test_lake_holds_every_committed_record_once_after_a_kill_9(stack_conf, stack_cfg):
    cfg = stack_cfg
    payline(stack_conf, "up")
    for name, partitions in {**TOPICS, OTHER: 1}.items():
        create_topic(cfg, name, partitions)
    aborted = "ABORTED-must-never-be-archived"
    send_batch(cfg, 0, aborted)
    payline(stack_conf, *overrides(), "archiver", "start")
    lake = cfg.paths.raw_dir
    wait_for(lambda: len(list(lake.glob("it.arch.*/date=*/hour=*/part-*"))) >= 3, 60,
             "the archiver's first files", every_s=0.5)
    send_batch(cfg, 1, aborted)
    os.kill(archiver_pid(cfg), signal.SIGKILL)  # mid-traffic, whatever it was doing
    time.sleep(1)
    # what a crash mid-write leaves behind: a temporary file, never part of the lake
    leftover = next(lake.glob("it.arch.alpha/date=*/hour=*")) / ".tmp-part-0-999999-999999.parquet"
    leftover.write_bytes(b"half a file")
    send_batch(cfg, 2, aborted)

    expected = {}
    for topic in TOPICS:
        for r in read_all(cfg, topic):
            expected[(topic, r.partition, r.offset)] = (r.key, r.value, r.timestamp)
    payline(stack_conf, *overrides(), "archiver", "start")
    try:
        wait_for(lambda: archiver.read_lake(cfg).num_rows >= len(expected), 120,
                 f"{len(expected)} rows in the lake", every_s=0.5)
        time.sleep(2)  # anything written twice would show now
    finally:
        payline(stack_conf, "archiver", "stop")

    table = archiver.read_lake(cfg)
    rows = table.to_pylist()
    positions = [(r["topic"], r["partition"], r["offset"]) for r in rows]
    assert len(positions) == len(set(positions)), "a record was archived twice"
    assert set(positions) == set(expected)
    for r in rows:
        key, value, ts = expected[(r["topic"], r["partition"], r["offset"])]
        assert (r["key"], r["value"], r["timestamp_ms"]) == (key, value, ts)
    assert not any(r["value"] == aborted.encode() for r in rows)
    assert not (lake / OTHER).exists()
    assert not list(lake.glob("*/date=*/hour=*/.tmp-*")), "a temporary file was left behind"
    # each file is named by the offset range it holds, of one partition and one hour
    for f in lake.glob("it.arch.*/date=*/hour=*/part-*.parquet"):
        _, partition, first, last = f.stem.split("-")
        part = pq.read_table(f).to_pydict()
        assert set(part["partition"]) == {int(partition)}
        assert (min(part["offset"]), max(part["offset"])) == (int(first), int(last))
        assert part["offset"] == sorted(part["offset"])
