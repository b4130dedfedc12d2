"""The raw-log archiver (``jobs.archiver``) as a background process of the local stack:
started with this call's configuration, found and stopped by pid."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from payline.errors import StackError
from payline.local.procs import ours, read_pid, stop_part, tail
from runtime.settings import Config


def archiver_paths(cfg: Config) -> tuple[Path, Path]:
    home = cfg.paths.run_dir / "archiver"
    return home / "archiver.pid", home / "archiver.log"


def archiver_pids(cfg: Config) -> list[int]:
    pid_file, _ = archiver_paths(cfg)
    return [p for p in read_pid(pid_file) if ours(p, str(cfg.paths.run_dir.resolve()))]


def archiver_up(cfg: Config, cli_args: list[str], log=print) -> None:
    """Start ``payline archiver run`` in the background (same --conf/--set as this call)."""
    pid_file, log_file = archiver_paths(cfg)
    running = archiver_pids(cfg)
    if running:
        log(f"archiver: already running (pid {running[0]})")
        return
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).parent / "payline"
    # the run dir on the command line marks the process as this stack's (see _ours)
    cmd = [str(exe), *cli_args, "--set", f"paths.run_dir={cfg.paths.run_dir.resolve()}",
           "archiver", "run"]
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=cfg.root)
    pid_file.write_text(f"{proc.pid}\n")
    time.sleep(1)
    if proc.poll() is not None:
        raise StackError(f"archiver: exited at start (code {proc.returncode}); "
                         f"log {log_file}:\n{tail(log_file)}")
    log(f"archiver: up (pid {proc.pid}, log {log_file}), writing {cfg.paths.raw_dir}")


def archiver_down(cfg: Config, log=print) -> None:
    stop_part("archiver", archiver_pids(cfg), archiver_paths(cfg)[0], log)
