"""The Flink distribution inside the apache-flink wheel (``pyflink/bin``, ``lib``, ``conf``) and
this stack's configuration of it: the folders under ``<run_dir>/flink``, the environment its
scripts and `flink run` need, and ``config.yaml`` rendered from ``conf/flink/config.yaml``.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

# the wheel's distribution is found through its package, imported only when a path is asked
import pyflink

from payline.assets import asset
from payline.jdk import java_bin
from payline.templates import render
from runtime.settings import Config


def flink_home() -> Path:
    return Path(pyflink.__file__).resolve().parent


@dataclass(frozen=True)
class FlinkPaths:
    home: Path

    @property
    def conf(self) -> Path:
        return self.home / "conf"

    @property
    def logs(self) -> Path:
        return self.home / "log"

    @property
    def pids(self) -> Path:
        return self.home / "pid"

    @property
    def tmp(self) -> Path:
        """io.tmp.dirs: the TaskManagers' working directories (RocksDB's local state among
        them), one per TaskManager process."""
        return self.home / "tmp"


def flink_paths(cfg: Config) -> FlinkPaths:
    return FlinkPaths(cfg.paths.run_dir / "flink")


def flink_env(cfg: Config) -> dict[str, str]:
    """Environment for the wheel's bin/ scripts (start-cluster.sh, flink run, ...)."""
    fp = flink_paths(cfg)
    env = dict(os.environ)
    env.update({
        "FLINK_HOME": str(flink_home()),
        "FLINK_CONF_DIR": str(fp.conf),
        "FLINK_LOG_DIR": str(fp.logs),
        "FLINK_PID_DIR": str(fp.pids),
        # Python workers and the `flink run --python` client use the venv's interpreter.
        "PYFLINK_CLIENT_EXECUTABLE": sys.executable,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    })
    java = java_bin()
    env.setdefault("JAVA_HOME", str(Path(java).resolve().parent.parent))
    return env


def flink_bin(name: str) -> str:
    return str(flink_home() / "bin" / name)


def managed_fraction(fc) -> str:
    """The TaskManager's managed memory fraction: Flink's default 0.4 where RocksDB or
    process-mode Python workers use it; 0.05 with heap state in thread mode, where the heap
    (the state's home) gets the rest. The transactions job's vectorised validation runs in a
    Python worker process even in thread mode; its share of the 5 % is bookkeeping only (the
    worker holds a few Arrow batches and PyFlink enforces no limit on it)."""
    return "0.05" if fc.state_backend == "hashmap" and fc.python_execution_mode == "thread" \
        else "0.4"


def render_flink_conf(cfg: Config) -> FlinkPaths:
    fc, fp = cfg.flink, flink_paths(cfg)
    for d in (fp.conf, fp.logs, fp.pids, fp.tmp):
        d.mkdir(parents=True, exist_ok=True)
    for name in ("log4j.properties", "log4j-console.properties", "log4j-cli.properties",
                 "log4j-session.properties", "logback.xml", "logback-console.xml"):
        src = flink_home() / "conf" / name
        if src.exists():
            shutil.copyfile(src, fp.conf / name)
    (cfg.paths.checkpoints_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (cfg.paths.checkpoints_dir / "savepoints").mkdir(parents=True, exist_ok=True)
    render(asset("conf/flink/config.yaml"), fp.conf / "config.yaml", {
        "pid_dir": fp.pids, "log_dir": fp.logs, "tmp_dir": fp.tmp.resolve(), "host": fc.host,
        "jobmanager_rpc_port": fc.jobmanager_rpc_port, "rest_port": fc.rest_port,
        "jobmanager_memory_mb": fc.jobmanager_memory_mb,
        "taskmanager_memory_mb": fc.taskmanager_memory_mb,
        "taskmanager_slots": fc.taskmanager_slots, "default_parallelism": fc.default_parallelism,
        "checkpoints_dir": cfg.paths.checkpoints_dir.resolve(),
        "checkpoint_interval_ms": fc.checkpoint_interval_ms,
        "checkpoint_timeout_ms": fc.checkpoint_timeout_ms,
        "min_pause_between_checkpoints_ms": fc.min_pause_between_checkpoints_ms,
        "restart_attempts": fc.restart_attempts, "restart_delay_ms": fc.restart_delay_ms,
        "restart_interval_s": fc.restart_interval_s,
        "tolerable_failed_checkpoints": fc.tolerable_failed_checkpoints,
        "heartbeat_interval_ms": fc.heartbeat_interval_ms,
        "heartbeat_timeout_ms": fc.heartbeat_timeout_ms,
        "metrics_refresh_ms": fc.metrics_refresh_ms,
        "prometheus_port_first": fc.prometheus_port_first,
        "prometheus_port_last": fc.prometheus_port_last,
        "python": sys.executable, "python_execution_mode": fc.python_execution_mode,
        "state_backend": fc.state_backend, "managed_fraction": managed_fraction(fc),
    })
    (fp.conf / "masters").write_text(f"{fc.host}:{fc.rest_port}\n")
    # start-cluster.sh starts a worker locally (no ssh) only for the literal "localhost".
    (fp.conf / "workers").write_text("localhost\n")
    return fp


def install_python_jar_in_lib() -> None:
    """FLINK-37727: under Java 17 a second thread-mode Python job on one TaskManager fails with
    NoSuchFieldException: loadedLibraryNames unless flink-python is on the cluster classpath."""
    home = flink_home()
    for jar in (home / "opt").glob("flink-python-*.jar"):
        target = home / "lib" / jar.name
        if not target.exists():
            shutil.copyfile(jar, target)
