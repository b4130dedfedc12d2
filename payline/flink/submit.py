"""The one builder of the `flink run` command (the wheel's client, this stack's rendered
configuration and the Kafka connector jar), for a job of the checkout (`payline submit`) and for
a release (``--pyFiles`` of its bundle) alike, and the one reader of the job id it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from payline.errors import FlinkError, StackError
from payline.flink.dist import flink_bin, flink_env, render_flink_conf
from payline.flink.rest import FlinkRest
from runtime.settings import Config

JOB_ID = re.compile(r"JobID ([0-9a-f]{32})")

# RocksDB's share of a slot below which its write buffers are a few MB and it flushes its
# memtables constantly (the TaskManager log says so; bench/RESULTS.md, 2026-11-27: a job
# 40 s behind at 3 000 events/s). Flink's default fraction gives ~125 MiB per slot here.
MIN_ROCKSDB_SLOT_MANAGED_BYTES = 64 * 1024 * 1024


def connector_jars(cfg: Config) -> list[Path]:
    jars = sorted(cfg.flink.jars_dir.glob("flink-sql-connector-kafka-*.jar"))
    if not jars:
        raise StackError(f"flink: no Kafka connector jar in {cfg.flink.jars_dir} "
                         f"(flink.jars_dir); `payline up` fetches it with Maven")
    return jars


def run_command(cfg: Config, python_file: Path, job_args: list[str], *, detached: bool = False,
                from_savepoint: str | None = None, allow_non_restored: bool = False,
                parallelism: int | None = None, py_files: Path | None = None) -> list[str]:
    """The exact `flink run` command line of a Python job (``-m`` for a remote cluster; the
    local one is in the rendered configuration). ``py_files``: a release's bundle, shipped to
    the TaskManagers."""
    cmd = [flink_bin("flink"), "run", *cfg.flink.run_options()]
    if detached:
        cmd.append("-d")
    if from_savepoint:
        cmd += ["-s", from_savepoint]
        if allow_non_restored:
            cmd.append("--allowNonRestoredState")
    if parallelism:
        cmd += ["-p", str(parallelism)]
    for jar in connector_jars(cfg):
        cmd += ["--jarfile", str(jar)]
    if py_files:
        cmd += ["--pyFiles", str(py_files)]
    cmd += ["--python", str(python_file), *job_args]
    return cmd


def job_id_of(output: str) -> str | None:
    """The job id `flink run` printed ("Job has been submitted with JobID ...")."""
    found = JOB_ID.search(output)
    return found.group(1) if found else None


def rocksdb_memory_warning(cfg: Config, taskmanagers: list[dict] | None) -> str | None:
    """A one-line warning when this configuration's jobs keep RocksDB state but a TaskManager
    of the cluster (``GET /taskmanagers``) has too little managed memory per slot for it: a
    cluster started with ``flink.state_backend = "hashmap"`` (5 % managed memory) and not
    restarted after the switch. None when all is well or the cluster cannot be asked."""
    if cfg.flink.state_backend != "rocksdb" or not taskmanagers:
        return None
    for tm in taskmanagers:
        managed = tm.get("memoryConfiguration", {}).get("managedMemory")
        slots = tm.get("slotsNumber") or 1
        if managed is not None and managed / slots < MIN_ROCKSDB_SLOT_MANAGED_BYTES:
            return (f"flink: warning: TaskManager {tm.get('id')} has "
                    f"{managed / slots / 2**20:.0f} MiB of managed memory per slot, too little "
                    f"for RocksDB state (flink.state_backend = \"rocksdb\"): its memtables "
                    f"would flush constantly. Was the cluster started for heap state? Restart "
                    f"it with this configuration (`payline down`, `payline up`)")
    return None


def prepare_client(cfg: Config) -> None:
    """Before a submission: the client's configuration (it reads rest.address/port from
    FLINK_CONF_DIR) and, on stderr, :func:`rocksdb_memory_warning`."""
    render_flink_conf(cfg)
    try:
        taskmanagers = FlinkRest.of(cfg).taskmanagers()
    except FlinkError:
        taskmanagers = None  # `flink run` itself says what is wrong with the cluster
    warning = rocksdb_memory_warning(cfg, taskmanagers)
    if warning:
        print(warning, file=sys.stderr)


def flink_run(cfg: Config, python_file: Path, job_args: list[str], *, detached: bool = False,
              timeout_s: float | None = None, **kw) -> subprocess.CompletedProcess:
    """Submit a Python job of this checkout with the wheel's `flink run` (options: see
    :func:`run_command`); raises StackError when it fails."""
    prepare_client(cfg)
    cmd = run_command(cfg, python_file, job_args, detached=detached, **kw)
    proc = subprocess.run(cmd, env=flink_env(cfg), capture_output=True, text=True,
                          timeout=timeout_s, cwd=cfg.root)
    if proc.returncode != 0:
        raise StackError(f"flink run {python_file.name} failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc
