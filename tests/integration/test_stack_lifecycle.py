"""The local stack, for real: `payline up` starts a KRaft broker and a Flink cluster, topics are
made as configured, records round-trip, a PyFlink job submitted with the wheel's `flink run`
copies a topic exactly once, `payline down` leaves no process behind, and `up --secure` refuses
a broker formatted without it.

The module runs a stack of its own (own ports and run dir), so taking it down touches no other
module's; every test brings it up first (`up` is idempotent), so none depends on another's
order or leftovers.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from payline import kafka_admin
from payline.flink.submit import flink_run
from payline.generator.send import producer
from payline.local.broker import kafka_pids
from payline.local.cluster import flink_pids
from runtime import config
from tests.support.kafka_io import create_topic, read_all
from tests.support.stack import ROOT, payline
from tests.support.stacks import stack_toml

pytestmark = pytest.mark.integration
KAFKA, REST, RPC, PROMETHEUS = 22092, 22081, 22123, 22249


@pytest.fixture(scope="module")
def own_conf() -> Path:
    run = ROOT / "run" / "test-lifecycle"
    conf = run / "lifecycle.toml"
    if conf.exists():  # a previous run's stack: stop it by pid before wiping its data
        payline(conf, "down", check=False)
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir(parents=True)
    conf.write_text(stack_toml(run, kafka=KAFKA, rest=REST, rpc=RPC, prometheus=PROMETHEUS,
                               checkpoint_ms=2000))
    yield conf
    payline(conf, "down", check=False)


@pytest.fixture
def stack_conf(own_conf) -> Path:
    """This module's stack, up."""
    payline(own_conf, "up")
    return own_conf


@pytest.fixture
def running(stack_conf):
    return config.load(stack_conf)


def test_up_starts_a_broker_and_a_flink_cluster_that_answer(running, stack_conf):
    st = json.loads(payline(stack_conf, "status", "--json").stdout)
    assert st["kafka"]["running"] and st["kafka"]["ready"]
    assert st["kafka"]["bootstrap"] == f"127.0.0.1:{KAFKA}"
    assert st["flink"]["running"] and st["flink"]["ready"]
    assert st["flink"]["web_ui"] == f"http://127.0.0.1:{REST}"
    assert st["flink"]["taskmanagers"] == 1
    assert st["flink"]["slots_total"] == running.flink.taskmanager_slots
    # JobManager and TaskManager each expose a Prometheus endpoint from the configured range
    assert len(st["flink"]["prometheus_ports"]) == 2
    assert all(PROMETHEUS <= p <= PROMETHEUS + 10 for p in st["flink"]["prometheus_ports"])
    # logs live in the run dir, never inside site-packages
    assert st["flink"]["logs"].startswith(str(running.paths.run_dir))
    assert list(Path(st["flink"]["logs"]).glob("*standalonesession*.log"))
    assert Path(st["kafka"]["log"]).exists()
    text = payline(stack_conf, "status").stdout
    assert f"http://127.0.0.1:{REST}" in text and f"127.0.0.1:{KAFKA}" in text


def test_up_twice_is_fine_and_starts_nothing_new(running, stack_conf):
    before = (kafka_pids(running), flink_pids(running))
    out = payline(stack_conf, "up").stdout
    assert "kafka: already running" in out
    assert "flink: already running" in out
    assert (kafka_pids(running), flink_pids(running)) == before


def test_topics_exist_with_configured_partitions_and_compaction(running):
    described = kafka_admin.describe(running)
    assert set(described) == {
        "payments.transactions", "payments.accounts", "payments.account-aggregates",
        "payments.late-transactions", "payments.dlq", "payments.alerts",
    }
    for name, d in described.items():
        assert d["partitions"] == 3, name
        if name == "payments.accounts":
            assert d["cleanup.policy"] == "compact"
        else:
            assert d["cleanup.policy"] == "delete"
            assert d["retention.ms"] == str(running.topic_settings.retention_ms)


def test_generated_records_are_all_read_back(running, stack_conf, tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    payline(stack_conf, "generate", "--count", "10000", "--max-speed", "--seed", "11",
            "--start-ms", "1767225600000", "--manifest", str(manifest))
    sent = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(sent) == 10000 + running.generator.accounts
    for topic in ("payments.transactions", "payments.accounts"):
        expected = sorted(
            (e["partition"], e["offset"], e["key"]) for e in sent if e["topic"] == topic)
        got = [(r.partition, r.offset, r.key.decode()) for r in read_all(running, topic)]
        assert got == expected
    by_pos = {(e["partition"], e["offset"]): e for e in sent
              if e["topic"] == "payments.transactions" and e["value"] is not None}
    for r in read_all(running, "payments.transactions"):
        e = by_pos.get((r.partition, r.offset))
        if e is not None:
            assert r.value == e["value"].encode()


def test_flink_job_copies_a_topic_exactly_once(running):
    create_topic(running, "it.copy.in", 3)
    create_topic(running, "it.copy.out", 3)
    prod = producer(running.kafka.bootstrap)
    values = [f"record-{i:05d}" for i in range(5000)]
    for v in values:
        prod.produce("it.copy.in", value=v.encode(), key=v[-1:].encode())
    assert prod.flush(30) == 0

    proc = flink_run(running, ROOT / "tests/integration/flink_jobs/copy_topic.py",
                     ["--bootstrap", running.kafka.bootstrap, "--source", "it.copy.in",
                      "--sink", "it.copy.out"], timeout_s=300)
    assert "has finished" in proc.stdout

    copied = [r.value.decode() for r in read_all(running, "it.copy.out", committed_only=True)]
    assert sorted(copied) == values  # every record, each exactly once


def _processes_under(path: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if str(path).encode() in fh.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def test_down_leaves_no_broker_jobmanager_or_taskmanager(running, stack_conf):
    fl = flink_pids(running)
    pids = kafka_pids(running) + fl["jobmanager"] + fl["taskmanager"]
    assert len(pids) == 3
    payline(stack_conf, "down")
    assert [p for p in pids if os.path.exists(f"/proc/{p}")
            and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"] == []
    assert _processes_under(running.paths.run_dir) == []
    st = json.loads(payline(stack_conf, "status", "--json").stdout)
    assert not st["kafka"]["running"] and not st["flink"]["running"]


def test_up_secure_refuses_a_broker_formatted_without_it(running, stack_conf):
    """A run dir whose broker storage was formatted plaintext cannot be turned secure in
    place: one line says so and what to do, and nothing that runs is touched."""
    before = (kafka_pids(running), flink_pids(running))
    proc = payline(stack_conf, "up", "--secure", check=False)
    assert proc.returncode == 3
    assert "was formatted without secure mode" in proc.stderr and "--secure" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert (kafka_pids(running), flink_pids(running)) == before
    assert not (running.paths.run_dir / "kafka" / "secure-mode").exists()
    st = json.loads(payline(stack_conf, "status", "--json").stdout)
    assert st["kafka"]["ready"] and not st["kafka"]["secure"]


@pytest.mark.parametrize("key", ["kafka.port", "flink.rest_port"])
def test_up_names_the_part_that_cannot_start(tmp_path, key):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        conf = tmp_path / "c.toml"
        conf.write_text(f'[paths]\nrun_dir = "{tmp_path}/run"\ncheckpoints_dir = '
                        f'"{tmp_path}/cp"\n[kafka]\nport = 29092\ncontroller_port = 29093\n'
                        f'[flink]\nrest_port = 28081\njobmanager_rpc_port = 26123\n')
        proc = payline(conf, "--set", f"{key}={port}", "up", check=False, timeout=300)
        payline(conf, "down", check=False)
    assert proc.returncode == 3
    assert key in proc.stderr and "already in use" in proc.stderr
    assert "Traceback" not in proc.stderr
