"""The real local stack for integration tests: its own ports, run dir and checkpoints, so it
never collides with a developer's `payline up` on the default ports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from payline import config, stack
from tests.stacks import stack_toml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def stack_conf() -> Path:
    """A fresh run dir (default run/test-stack, kept after the run for its logs)."""
    base = Path(os.environ.get("PAYLINE_TEST_RUN_DIR") or ROOT / "run" / "test-stack")
    conf = base / "test-stack.toml"
    if conf.exists():  # a previous run's stack: stop it by pid before wiping its data
        payline(conf, "down", check=False)
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    conf.write_text(stack_toml(base, kafka=19092, rest=18081, rpc=16123, prometheus=19249,
                               checkpoint_ms=2000))
    yield conf
    # whichever module started the stack last, nothing of it outlives the session
    payline(conf, "down", check=False)


@pytest.fixture(scope="session")
def stack_cfg(stack_conf) -> config.Config:
    return config.load(stack_conf)


def payline(conf: Path, *args: str, check: bool = True, timeout: float = 600):
    """Run the real `payline` console script, as a user would."""
    exe = Path(sys.executable).parent / "payline"
    proc = subprocess.run([str(exe), "--conf", str(conf), *args], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"payline {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def wait_for(predicate, timeout_s: float, what: str, every_s: float = 2):
    """Poll ``predicate`` until it returns something true (returned) or fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for every Spark test of the session."""
    from jobs.batch import reconcile

    session = reconcile.spark_session("local[2]", "payline-tests")
    yield session
    session.stop()


def flink_api(cfg, path: str, method: str = "GET", body=None):
    """One call of the Flink REST API; raises on an HTTP error."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{cfg.flink.rest_url}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def rocksdb_compression(cfg, job_id) -> dict[str, set[str]]:
    """Per RocksDB instance of the running job on the TaskManager's disk (its folder name),
    the ``compression_per_level`` of every column family in its newest OPTIONS file."""
    out = {}
    for db in stack.flink_paths(cfg).tmp.rglob(f"job_{job_id}_op_*/db"):
        newest = max(db.glob("OPTIONS-*"), key=lambda p: int(p.name.split("-")[1]))
        out[db.parent.name] = {line.strip().split("=", 1)[1]
                               for line in newest.read_text().splitlines()
                               if line.strip().startswith("compression_per_level=")}
    return out


def assert_state_uncompressed(cfg, job_id) -> None:
    """flink.rocksdb_compression = "none", a job-level setting: every RocksDB instance of the
    running job writes uncompressed files."""
    assert cfg.flink.state_backend == "rocksdb" and cfg.flink.rocksdb_compression == "none"
    compression = rocksdb_compression(cfg, job_id)
    assert len(compression) >= 3, compression
    assert all(v == {"kNoCompression"} for v in compression.values()), compression


def cancel_job(cfg, job_id: str) -> None:
    flink_api(cfg, f"/jobs/{job_id}?mode=cancel", method="PATCH")


def submit_job(stack_conf: Path, cfg, job: str, topics: dict[str, str], group: str,
               *extra: str) -> str:
    """`payline submit <job>` on ``topics`` (by config key, created with 3 partitions) from
    the earliest offsets; returns the job id."""
    from .kafka_io import create_topic

    payline(stack_conf, "up")
    for name in topics.values():
        create_topic(cfg, name, 3)
    overrides = [f"--set=topics.{k}={v}" for k, v in topics.items()]
    out = payline(stack_conf, *overrides, "submit", job, "--starting-offsets", "earliest",
                  "--group-id", group, *extra).stdout
    return re.search(r"job id ([0-9a-f]{32})", out).group(1)
