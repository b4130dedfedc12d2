"""`flink run` of the apache-flink wheel, with the project's rendered configuration and jars."""

from __future__ import annotations

import subprocess
from pathlib import Path

from payline.config import Config
from payline.stack import StackError, flink_bin, flink_env, render_flink_conf


def connector_jars(cfg: Config) -> list[Path]:
    jars = sorted(cfg.flink.jars_dir.glob("flink-sql-connector-kafka-*.jar"))
    if not jars:
        raise StackError(f"flink: no Kafka connector jar in {cfg.flink.jars_dir} "
                         f"(flink.jars_dir); `payline up` fetches it with Maven")
    return jars


def run_command(cfg: Config, python_file: Path, job_args: list[str], *, detached: bool = False,
                from_savepoint: str | None = None, parallelism: int | None = None) -> list[str]:
    """The exact `flink run` command line for a Python job."""
    cmd = [flink_bin("flink"), "run", *cfg.flink.run_options()]
    if detached:
        cmd.append("-d")
    if from_savepoint:
        cmd += ["-s", from_savepoint]
    if parallelism:
        cmd += ["-p", str(parallelism)]
    for jar in connector_jars(cfg):
        cmd += ["--jarfile", str(jar)]
    cmd += ["--python", str(python_file), *job_args]
    return cmd


def flink_run(cfg: Config, python_file: Path, job_args: list[str], *, detached: bool = False,
              timeout_s: float | None = None, **kw) -> subprocess.CompletedProcess:
    """Submit a Python job with the wheel's `flink run`; raises StackError when it fails."""
    render_flink_conf(cfg)  # the client reads rest.address/port from FLINK_CONF_DIR
    cmd = run_command(cfg, python_file, job_args, detached=detached, **kw)
    proc = subprocess.run(cmd, env=flink_env(cfg), capture_output=True, text=True,
                          timeout=timeout_s, cwd=cfg.root)
    if proc.returncode != 0:
        raise StackError(f"flink run {python_file.name} failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    return proc
