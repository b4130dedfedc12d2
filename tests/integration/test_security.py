"""Secure mode on a real broker (`payline up --secure`): TLS + SASL/SCRAM, the StandardAuthorizer
with ACLs, one principal per component.

A secure stack of its own (its own ports and run dir, its own small Flink cluster), so that it
never touches the session stack: unauthenticated clients are refused, a principal cannot write
where its ACLs do not let it, and the whole pipeline (generator -> both Flink jobs -> archiver)
runs over TLS + SASL with the exact outputs the generated traffic implies. Afterwards no log
written during the run holds a password or an account id.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import KafkaError
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError as PyKafkaError
from kafka.errors import TopicAuthorizationFailedError

from jobs import archiver
from payline.generator.send import producer
from runtime import config, kafka_clients
from tests.support.kafka_io import read_all
from tests.support.stack import ROOT, flink_api, payline, wait_for
from tests.support.stacks import stack_toml

pytestmark = pytest.mark.integration

SECURE_EXTRA = """jobmanager_memory_mb = 1024
taskmanager_memory_mb = 2048

[security]
port = 19294

[archiver]
flush_interval_ms = 1000

[event_time]
# no partition counts as idle during the run: on a busy machine a partition whose reader stalls
# for the default 10 s would let the others move the watermark on, and turn its records late
idleness_ms = 600000
"""
W = 60_000
OUTPUT = []  # everything the CLI printed during the module, scanned at the end


def run_cli(conf: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = payline(conf, *args, timeout=timeout)
    OUTPUT.append(proc.stdout + proc.stderr)
    return proc


@pytest.fixture(scope="module")
def secure():
    base = Path(os.environ.get("PAYLINE_TEST_RUN_DIR") or ROOT / "run" / "test-stack").parent \
        / "test-secure"
    conf = base / "secure.toml"
    if conf.exists():
        payline(conf, "down", check=False)
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    conf.write_text(stack_toml(base, kafka=19292, rest=18281, rpc=16323, prometheus=19449,
                               checkpoint_ms=2000, extra=SECURE_EXTRA))
    try:
        run_cli(conf, "up", "--secure")
        yield conf, config.load(conf)
    finally:
        OUTPUT.append(payline(conf, "down", check=False).stdout)


def _admin_as(cfg, **client):
    return KafkaAdminClient(bootstrap_servers=kafka_clients.bootstrap(cfg), request_timeout_ms=5000,
                            bootstrap_timeout_ms=5000, **client)


def test_up_secure_leaves_nothing_in_plaintext_and_secrets_private(secure):
    conf, cfg = secure
    assert kafka_clients.active(cfg)
    with socket.socket() as s:  # nothing listens on the plaintext port
        assert s.connect_ex((cfg.kafka.host, cfg.kafka.port)) != 0
    f = kafka_clients.files(cfg)
    assert oct(f.secrets.stat().st_mode & 0o777) == "0o700"
    for p in [*f.secrets.iterdir(), f.keystore]:
        assert p.stat().st_mode & 0o077 == 0, p
    props = (cfg.paths.run_dir / "kafka" / "server.properties").read_text()
    for c in kafka_clients.COMPONENTS:
        assert kafka_clients.reveal(kafka_clients.password(cfg, c)) not in props
    status = json.loads(run_cli(conf, "status", "--json").stdout)
    assert status["kafka"]["ready"] and status["kafka"]["secure"]


def test_unauthenticated_clients_are_refused(secure):
    _, cfg = secure
    ca = str(kafka_clients.files(cfg).ca_pem)
    # the real principal gets in (so what follows is refused for its credentials alone)
    admin = _admin_as(cfg, **{k: v for k, v in kafka_clients.kafka_python_config(cfg, "ops").items()
                              if k != "bootstrap_servers"})
    assert admin.describe_cluster()["cluster_id"]
    admin.close()
    refused = [
        {},                                                   # plain TCP
        {"security_protocol": "SSL", "ssl_cafile": ca},       # TLS without SASL
        {"security_protocol": "SASL_SSL", "ssl_cafile": ca,   # SASL with a wrong password
         "sasl_mechanism": cfg.security.mechanism,
         "sasl_plain_username": cfg.security.generator_principal,
         "sasl_plain_password": "not-the-password-0123456789"},
    ]
    for client in refused:
        with pytest.raises(PyKafkaError):
            _admin_as(cfg, **client).describe_cluster()
    log = (cfg.paths.run_dir / "kafka" / "logs" / "server.log").read_text()
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in log


def test_a_principal_cannot_write_or_read_outside_its_acls(secure):
    _, cfg = secure
    for who, topic in (("analyst", cfg.topics.transactions), ("generator", cfg.topics.alerts),
                       ("archiver", cfg.topics.dlq)):
        errors = []
        # not idempotent: a principal with no write ACL at all would otherwise be refused its
        # producer id (cluster authorization) before the write is refused
        prod = producer(kafka_clients.librdkafka_config(cfg, who),
                                  **{"client.id": f"it-{who}", "enable.idempotence": False})
        prod.produce(topic, b'{"x":1}', key=b"k",
                     on_delivery=lambda e, m, errors=errors: errors.append(e))
        assert prod.flush(30) == 0
        assert [e and e.code() for e in errors] == [KafkaError.TOPIC_AUTHORIZATION_FAILED], who
    consumer = KafkaConsumer(enable_auto_commit=False,
                             **kafka_clients.kafka_python_config(cfg, "analyst"))
    try:
        tp = TopicPartition(cfg.topics.transactions, 0)
        consumer.assign([tp])
        with pytest.raises(TopicAuthorizationFailedError):
            consumer.position(tp)  # a ListOffsets request: refused for the topic
    finally:
        consumer.close()


def _job_state(cfg, job_id):
    return flink_api(cfg, f"/jobs/{job_id}")["state"]


def test_the_pipeline_runs_end_to_end_over_tls_and_sasl(secure, tmp_path):
    conf, cfg = secure
    manifest = tmp_path / "manifest.jsonl"
    run_cli(conf, "generate", "--count", "3000", "--rate", "25", "--max-speed", "--seed", "11",
            "--accounts", "40", "--late-fraction", "0", "--conflicting-duplicate-fraction", "0",
            "--large-amount-fraction", "0.01", "--manifest", str(manifest))
    sent = [json.loads(line) for line in manifest.read_text().splitlines()]
    run_cli(conf, "archiver", "start")
    # both jobs at once (each `flink run` client compiles its plan for a while), bounded: they
    # read what was sent and finish, so every window closes and the last checkpoint commits
    exe = Path(sys.executable).parent / "payline"
    clients = [subprocess.Popen([str(exe), "--conf", str(conf), "submit", job, "--bounded",
                                 "--starting-offsets", "earliest"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for job in ("transactions", "fraud")]
    for c in clients:
        out, _ = c.communicate(timeout=600)
        OUTPUT.append(out)
        assert c.returncode == 0, out
    job_ids = [out.split("job id ")[1].split(";")[0] for out in OUTPUT[-2:]]
    wait_for(lambda: all(_job_state(cfg, j) == "FINISHED" for j in job_ids), 300,
             "both bounded jobs to finish")

    txns = [e for e in sent if e["topic"] == cfg.topics.transactions]
    valid = [json.loads(e["value"]) for e in txns if e["category"] == "valid"]
    bad = {(e["partition"], e["offset"]) for e in txns
           if e["category"] in ("malformed", "schema_violation", "invalid_value")}
    # aggregates: plain arithmetic over the valid records, every window (the input ended)
    expected: dict[str, dict] = defaultdict(lambda: {"txn_count": 0, "purchase_cents": 0,
                                                     "refund_cents": 0})
    for t in valid:
        a = expected[f"{t['account_id']}|{t['currency']}|{t['event_time_ms'] // W * W}"]
        a["txn_count"] += 1
        a[f"{t['kind']}_cents"] += t["amount_cents"]
    assert read_all(cfg, cfg.topics.late) == []
    got = {r.key.decode(): json.loads(r.value) for r in read_all(cfg, cfg.topics.aggregates)}
    # every window the watermark has passed is there (the last window the bounded run reads
    # into is not always emitted before the job finishes: it is left out of this check) ...
    closed_before = (max(t["event_time_ms"] for t in valid)
                     - cfg.event_time.out_of_orderness_ms) // W * W - W
    assert {k for k in expected if int(k.rsplit("|", 1)[1]) < closed_before} <= set(got)
    # ... and every committed aggregate is exactly the arithmetic of its window
    assert {k: {f: v[f] for f in ("txn_count", "purchase_cents", "refund_cents")}
            for k, v in got.items()} == {k: expected[k] for k in got}
    dlq = [json.loads(r.value) for r in read_all(cfg, cfg.topics.dlq)]
    assert {(d["source_partition"], d["source_offset"]) for d in dlq
            if d["source_topic"] == cfg.topics.transactions} == bad
    alerts = {json.loads(r.value)["alert_id"]: json.loads(r.value)
              for r in read_all(cfg, cfg.topics.alerts)}
    # LARGE_AMOUNT fires as soon as a transaction is accepted, whatever its window
    large = {a["txn_ids"][0] for a in alerts.values() if a["rule"] == "LARGE_AMOUNT"}
    assert large == {t["txn_id"] for t in valid if t["amount_cents"] >= 1_000_000}
    assert large

    # the archiver (its own principal) holds every record sent and every committed output
    def archived():
        lake = archiver.read_lake(cfg)
        rows = set(zip(lake.column("topic").to_pylist(), lake.column("partition").to_pylist(),
                       lake.column("offset").to_pylist(), strict=True))
        want = {(e["topic"], e["partition"], e["offset"]) for e in sent}
        return want <= rows and archiver.read_lake(cfg, cfg.topics.aggregates).num_rows \
            == len(got) and archiver.read_lake(cfg, cfg.topics.dlq).num_rows == len(dlq)

    wait_for(archived, 120, "the archiver to hold every record", every_s=2)
    status = run_cli(conf, "status").stdout
    lag = [line for line in status.splitlines() if line.startswith("lag    transactions")]
    assert lag and "n/a" not in lag[0], status  # the ops principal may describe the group
    run_cli(conf, "archiver", "stop")

    # what the Flink REST API knows of the jobs never holds a password
    rest = json.dumps([flink_api(cfg, f"/jobs/{j}/config") for j in job_ids]
                      + [flink_api(cfg, f"/jobs/{j}/plan") for j in job_ids])
    _assert_no_secret(cfg, {"flink REST": rest})


def _assert_no_secret(cfg, texts: dict[str, str]) -> None:
    f = kafka_clients.files(cfg)
    secrets = [kafka_clients.reveal(kafka_clients.password(cfg, c))
               for c in kafka_clients.COMPONENTS]
    secrets.append(kafka_clients.reveal(kafka_clients.read_password(f.store_password)))
    for where, text in texts.items():
        for s in secrets:
            assert s not in text, f"a password appears in {where}"


def test_no_log_of_the_run_holds_a_password_or_an_account_id(secure):
    conf, cfg = secure
    run = cfg.paths.run_dir
    logs = [p for d in (run / "kafka" / "logs", run / "flink" / "log", run / "archiver")
            for p in d.glob("*") if p.is_file()]
    assert any("server.log" in p.name for p in logs)
    assert any("taskexecutor" in p.name for p in logs)
    assert any("archiver.log" in p.name for p in logs)
    texts = {str(p): p.read_text(errors="replace") for p in logs}
    texts["CLI output"] = "\n".join(OUTPUT)
    _assert_no_secret(cfg, texts)
    # the Kafka clients did log their settings, with the password hidden
    assert any("sasl.jaas.config = [hidden]" in t for t in texts.values())
    # account ids (the generator's acct-NNNNNN) in no log line at INFO (or any) level
    for where, text in texts.items():
        assert "acct-" not in text, where
