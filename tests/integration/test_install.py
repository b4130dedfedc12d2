"""payline installed as a user installs it, and run where a user runs it: the wheel built from
this checkout's files, `pip install`ed with its dependencies into a new venv, and `payline
--help`, `init`, `up`, `status`, `release`, `deploy` and `down` run from a directory outside
the checkout. The stack's files (run dir, fetched jars, the Flink functions' jar, releases,
checkpoints) land in that directory, and the installed code, not the checkout's, runs.

Its own ports (Kafka 23092/23093, secure 23094, Flink REST 23081, RPC 23123, Prometheus
23249-23259) and its own folder under the system's temp dir, whose stack a crashed earlier run
left is stopped first.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from tests.support.stack import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]
BASE = Path(tempfile.gettempdir()) / "payline-test-install"
VENV, PROJECT = BASE / "venv", BASE / "project"
KAFKA, CONTROLLER, SECURE, REST, RPC, PROMETHEUS = 23092, 23093, 23094, 23081, 23123, 23249
EDITS = {("kafka", "port"): KAFKA, ("kafka", "controller_port"): CONTROLLER,
         ("security", "port"): SECURE, ("flink", "rest_port"): REST,
         ("flink", "jobmanager_rpc_port"): RPC, ("flink", "prometheus_port_first"): PROMETHEUS,
         ("flink", "prometheus_port_last"): PROMETHEUS + 10}


def run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """A command of the installed product, in ``cwd``, with the new venv first on PATH and
    nothing of this test process's Python or payline settings in its environment."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PAYLINE_") and k not in ("VIRTUAL_ENV", "PYTHONPATH",
                                                         "PYTHONHOME")}
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def payline(*args: str, check: bool = True, timeout: float = 600):
    proc = run([str(VENV / "bin" / "payline"), *args], PROJECT, timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"payline {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def source_copy(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked, and new ones not ignored), without its
    build leftovers and fetched jars: what a clone of it would build from."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    for name in filter(None, listed.stdout.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def edit(overlay: str, section: str, key: str, value: int) -> str:
    """Uncomment ``key`` in ``section`` of an overlay `payline init` wrote, with ``value``."""
    lines, current = overlay.splitlines(), None
    for i, line in enumerate(lines):
        if line.startswith("["):
            current = line.strip("[] ")
        elif current == section and line.startswith(f"# {key} = "):
            lines[i] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    raise AssertionError(f"{section}.{key} is not in the overlay")


def dlq_records(timeout_s: float) -> list:
    """The committed records of this stack's payments.dlq, once there is one."""
    consumer = KafkaConsumer("payments.dlq", bootstrap_servers=f"127.0.0.1:{KAFKA}",
                             isolation_level="read_committed", auto_offset_reset="earliest")
    try:
        deadline, got = time.monotonic() + timeout_s, []
        while not got and time.monotonic() < deadline:
            got = [r for batch in consumer.poll(timeout_ms=2000).values() for r in batch]
        return got
    finally:
        consumer.close()


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def installed() -> Path:
    """The wheel installed with its dependencies (pip's cache makes that about a minute) into a
    new venv; an earlier run's stack stopped and its folder removed first."""
    if (VENV / "bin" / "payline").exists() and (PROJECT / "payline.toml").exists():
        payline("down", check=False)
    shutil.rmtree(BASE, ignore_errors=True)
    (BASE / "dist").mkdir(parents=True)
    src = source_copy(BASE / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w",
                    str(BASE / "dist")], check=True, capture_output=True, timeout=600)
    wheel = next((BASE / "dist").glob("payline-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    proc = run([str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
               BASE, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    PROJECT.mkdir()
    return VENV


def test_the_venv_runs_the_installed_product_not_the_checkout(installed):
    probe = ("import json, payline, runtime.config as c, payline.assets as a\n"
             "print(json.dumps({'payline': payline.__file__, 'checkout': str(c.CHECKOUT),\n"
             "  'assets': str(a.ASSETS), 'defaults': c.defaults_text()}))")
    got = json.loads(run([str(VENV / "bin" / "python"), "-c", probe], PROJECT).stdout)
    site = next((VENV / "lib").glob("python3*/site-packages"))
    assert Path(got["payline"]).is_relative_to(site)
    assert got["checkout"] == "None"
    assert Path(got["assets"]) == site / "payline" / "share"
    # the defaults it carries are the checkout's conf/payline.toml, as they were built
    assert got["defaults"] == (BASE / "src" / "conf" / "payline.toml").read_text()
    for name in ("conf/kafka/server.properties", "conf/kafka/server-secure.properties",
                 "conf/kafka/log4j2.xml", "conf/flink/config.yaml", "infra/kafka/pom.xml",
                 "infra/flink/pom.xml"):
        assert (site / "payline" / "share" / name).read_bytes() == (ROOT / name).read_bytes()
    assert list((site / "payline" / "share" / "infra" / "flink-udfs" / "src").rglob("*.java"))

    helped = payline("--help")
    assert "init" in helped.stdout and "up" in helped.stdout


def test_init_up_status_and_down_outside_the_checkout(installed):
    assert not PROJECT.is_relative_to(ROOT)
    made = payline("init")
    overlay = PROJECT / "payline.toml"
    assert f"wrote {overlay}" in made.stdout and "next: payline up" in made.stdout
    again = payline("init", check=False)
    assert again.returncode == 2
    assert again.stderr.strip() == f"payline init: {overlay} exists; give --force to overwrite it"
    text = overlay.read_text()
    for (section, key), value in EDITS.items():
        text = edit(text, section, key, value)
    overlay.write_text(text)

    site = next((VENV / "lib").glob("python3*/site-packages"))
    started = time.monotonic()
    try:
        up = payline("up", timeout=900)
        print(f"payline up: {time.monotonic() - started:.0f} s\n{up.stdout}")

        # the broker answers on this project's port, with the contract's topics
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{KAFKA}",
                                 request_timeout_ms=10000)
        try:
            assert "payments.transactions" in admin.list_topics()
        finally:
            admin.close()
        # the Flink cluster answers on its REST port, with a TaskManager
        with urllib.request.urlopen(f"http://127.0.0.1:{REST}/overview", timeout=10) as r:
            assert json.load(r)["taskmanagers"] >= 1

        st = json.loads(payline("status", "--json").stdout)
        assert st["kafka"]["running"] and st["kafka"]["bootstrap"] == f"127.0.0.1:{KAFKA}"
        assert st["flink"]["running"] and st["flink"]["web_ui"] == f"http://127.0.0.1:{REST}"
        assert f"127.0.0.1:{KAFKA}" in payline("status").stdout

        # what `up` made is in the project directory, the relative paths resolved there
        run_dir = PROJECT / "run"
        assert f"listeners=PLAINTEXT://127.0.0.1:{KAFKA}" in (
            run_dir / "kafka" / "server.properties").read_text()
        assert f"log.dirs={run_dir / 'kafka' / 'data'}" in (
            run_dir / "kafka" / "server.properties").read_text()
        flink_conf = yaml.safe_load((run_dir / "flink" / "conf" / "config.yaml").read_text())
        for path in (flink_conf["env"]["pid"]["dir"], flink_conf["env"]["log"]["dir"],
                     flink_conf["io"]["tmp"]["dirs"],
                     flink_conf["execution"]["checkpointing"]["dir"]):
            assert str(path).removeprefix("file://").startswith(str(PROJECT)), path
        assert list((PROJECT / "infra" / "kafka" / "target" / "lib").glob("kafka_2.13-*.jar"))
        assert list((PROJECT / "infra" / "flink" / "target" / "lib").glob(
            "flink-sql-connector-kafka-*.jar"))
        assert (PROJECT / "infra" / "flink-udfs" / "target" / "payline-flink-udfs.jar").is_file()
        assert Path(st["kafka"]["log"]).is_relative_to(run_dir)
        assert Path(st["flink"]["logs"]).is_relative_to(run_dir)

        # a release of the installed code, deployed: its client runs in the release's own tree
        # and still reads this project's overlay (the broker's port), so a bad record sent to
        # this broker comes out on its DLQ
        assert "released transactions v1" in payline("release", "transactions", "--version",
                                                     "v1").stdout
        assert (PROJECT / "ops" / "releases" / "transactions" / "v1" / "bundle.zip").is_file()
        payline("deploy", "transactions", timeout=600)
        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{KAFKA}")
        producer.send("payments.transactions", key=b"acct-1", value=b"not json")
        producer.flush(30)
        producer.close()
        assert dlq_records(timeout_s=120)
        # nothing was built or fetched inside the installed package
        assert not list((site / "payline" / "share").rglob("target"))
    finally:
        down = payline("down", check=False, timeout=300)
    assert down.returncode == 0, down.stderr
    assert not port_open(KAFKA) and not port_open(REST)
    shutil.rmtree(BASE, ignore_errors=True)
