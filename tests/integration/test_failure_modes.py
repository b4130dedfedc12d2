"""An endpoint that does not answer: each command says so in one line within about
``connect_timeout_s`` (the defaults: 5 s for Kafka, 10 s for Flink), names the endpoint and what
to do, and exits 3. Run through the installed `payline` entry point, as an operator does, both
against a closed port (refused at once) and against a server that accepts connections and never
answers (the case that used to wait for minutes)."""

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

PAYLINE = str(Path(sys.executable).with_name("payline"))
# how much longer than its timeout a command may take: start-up, the Python interpreter, a
# loaded machine; far below the minutes a retrying client would take
MARGIN_S = 10


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def silent_server():
    """A TCP server that accepts every connection and never sends a byte."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held, stop = [], threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        t.join()
        for c in held:
            c.close()
        srv.close()


def payline(tmp_path, *argv) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    proc = subprocess.run([PAYLINE, "--set", f"paths.run_dir={tmp_path / 'run'}",
                           "--set", f"paths.ops_dir={tmp_path / 'ops'}", *argv],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    return proc, time.monotonic() - t0


def one_line(proc) -> str:
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.parametrize("endpoint", ["closed", "silent"])
@pytest.mark.parametrize("argv", [["topics"], ["generate", "--count", "10"]])
def test_an_unreachable_broker(tmp_path, endpoint, argv):
    with silent_server() if endpoint == "silent" else contextlib.nullcontext(closed_port()) as port:
        proc, took = payline(tmp_path, "--set", f"kafka.port={port}", *argv)
    line = one_line(proc)
    assert proc.returncode == 3, proc.stderr
    assert line == (f"payline {argv[0]}: kafka: no broker answers at 127.0.0.1:{port} within "
                    f"5 s (KafkaTimeoutError); start it with `payline up`, or point "
                    f"kafka.host/kafka.port (or PAYLINE_KAFKA_BOOTSTRAP) at a running one")
    assert took < 5 + MARGIN_S
    assert proc.stdout == ""


def test_the_broker_timeout_is_configurable(tmp_path):
    with silent_server() as port:
        proc, took = payline(tmp_path, "topics", "--set", f"kafka.port={port}",
                             "--set", "kafka.connect_timeout_s=1")
    assert proc.returncode == 3 and "within 1 s" in one_line(proc)
    assert took < 1 + MARGIN_S


@pytest.mark.parametrize("endpoint", ["closed", "silent"])
@pytest.mark.parametrize("argv", [["savepoint", "fraud"], ["submit", "fraud"],
                                  ["rollback", "fraud", "--keep-state"]])
def test_an_unreachable_remote_jobmanager(tmp_path, endpoint, argv):
    if argv[0] == "rollback":  # needs an upgrade on record before it asks the cluster
        ops = tmp_path / "ops"
        ops.mkdir()
        (ops / "upgrades.jsonl").write_text(json.dumps(
            {"job": "fraud", "from_version": "v1", "to_version": "v2", "savepoint": "file:/s",
             "time_ms": 1}) + "\n")
    with silent_server() if endpoint == "silent" else contextlib.nullcontext(closed_port()) as port:
        proc, took = payline(tmp_path, *argv, "--jobmanager", f"127.0.0.1:{port}",
                             "--set", "flink.connect_timeout_s=3")
    line = one_line(proc)
    assert proc.returncode == 3, proc.stderr
    assert line.startswith(f"payline {argv[0]}: flink: no JobManager answers at "
                           f"http://127.0.0.1:{port} within 3 s ("), line
    assert line.endswith("); start the local cluster with `payline up`, or check "
                         "--jobmanager / flink.jobmanager")
    assert took < 3 + MARGIN_S


def test_status_with_everything_stopped_answers_at_once_and_check_fails(tmp_path):
    ports = ["--set", f"kafka.port={closed_port()}", "--set", f"flink.rest_port={closed_port()}"]
    proc, took = payline(tmp_path, "status", *ports)
    assert proc.returncode == 0 and proc.stderr == ""
    assert "kafka  stopped" in proc.stdout and "flink  stopped" in proc.stdout
    assert took < MARGIN_S
    proc, _ = payline(tmp_path, "status", "--check", *ports)
    assert proc.returncode == 1
    assert "- kafka is stopped: start it with `payline up`" in proc.stdout


def test_status_shows_a_remote_jobmanager_that_does_not_answer_as_unreachable(tmp_path):
    with silent_server() as port:
        proc, took = payline(tmp_path, "status", "--check", "--jobmanager",
                             f"127.0.0.1:{port}", "--set", "flink.connect_timeout_s=2")
    assert proc.returncode == 1
    assert f"flink  unreachable web UI http://127.0.0.1:{port} (remote)" in proc.stdout
    assert f"no JobManager answers at http://127.0.0.1:{port} within 2 s" in proc.stdout
    assert took < 2 + MARGIN_S
