"""Driving a real stack of a test's own: the `payline` console script as a user runs it,
polling, the Flink REST client, and what the jobs' tests check on the TaskManager's disk."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from payline.errors import FlinkError
from payline.flink.dist import flink_paths
from payline.flink.rest import ENDED_STATES, FlinkRest
from tests.support.kafka_io import create_topic

ROOT = Path(__file__).resolve().parents[2]


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


def flink_api(cfg, path: str, method: str = "GET", body=None):
    """One call of the Flink REST API through the project's client; raises on an error."""
    return FlinkRest.of(cfg, timeout_s=30).call(path, method, body)


def rocksdb_compression(cfg, job_id) -> dict[str, set[str]]:
    """Per RocksDB instance of the running job on the TaskManager's disk (its folder name),
    the ``compression_per_level`` of every column family in its newest OPTIONS file."""
    out = {}
    for db in flink_paths(cfg).tmp.rglob(f"job_{job_id}_op_*/db"):
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
    """Cancel the job unless it has ended already: a job that failed on its own is no error of
    the clean-up (its cause is in a failed test's "flink" section, cluster_state), and raising
    here would hide the test's own failure."""
    rest = FlinkRest.of(cfg)
    if rest.job(job_id).get("state") not in ENDED_STATES:
        rest.cancel(job_id)


def last_cause(trace: str) -> str:
    """A Java stack trace's first line and its last ``Caused by:``, the root of it."""
    lines = trace.strip().splitlines()
    causes = [line for line in lines if line.startswith("Caused by:")]
    return " <- ".join(([lines[0]] if lines else []) + causes[-1:])[:400]


def cluster_state(cfg) -> str:
    """What the Flink cluster of ``cfg`` looks like now: its TaskManagers and slots, its jobs
    (newest first), and why each one that failed or restarted did. A failed integration test
    shows it (tests/integration/conftest.py): CI keeps no logs of the stack."""
    rest = FlinkRest.of(cfg, timeout_s=10)
    try:
        ov = rest.overview()
        jobs = sorted(rest.jobs(), key=lambda j: -j.get("start-time", 0))
    except FlinkError as exc:
        return str(exc)
    out = [f"{ov.get('taskmanagers')} TaskManagers, {ov.get('slots-available')} of "
           f"{ov.get('slots-total')} slots free, jobs running {ov.get('jobs-running')}, "
           f"failed {ov.get('jobs-failed')}, cancelled {ov.get('jobs-cancelled')}"]
    for job in jobs[:12]:
        line = f"  {job['name']} {job['state']} {job['jid']}"
        try:
            exc = rest.get(f"/jobs/{job['jid']}/exceptions")
            history = exc.get("exceptionHistory", {}).get("entries", [])
        except FlinkError:
            history = []
        if history:
            line += (f"; {len(history)} failure(s), the last: "
                     f"{last_cause(history[0].get('stacktrace', ''))}")
        out.append(line)
    return "\n".join(out)


def submit_job(stack_conf: Path, cfg, job: str, topics: dict[str, str], group: str,
               *extra: str) -> str:
    """`payline submit <job>` on ``topics`` (by config key, created with 3 partitions) from
    the earliest offsets; returns the job id."""
    payline(stack_conf, "up")
    for name in topics.values():
        create_topic(cfg, name, 3)
    overrides = [f"--set=topics.{k}={v}" for k, v in topics.items()]
    out = payline(stack_conf, *overrides, "submit", job, "--starting-offsets", "earliest",
                  "--group-id", group, *extra).stdout
    return re.search(r"job id ([0-9a-f]{32})", out).group(1)
