"""The local Flink standalone cluster from the wheel (``start-cluster.sh``, ``jobmanager.sh``,
``taskmanager.sh`` with this stack's rendered configuration): started and waited for until a
TaskManager is registered, one daemon more or again (a lost TaskManager or JobManager), and
stopped by pid with whatever its processes left behind (Python workers, working folders).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from payline.errors import FlinkError, StackError
from payline.flink.dist import (
    FlinkPaths,
    flink_bin,
    flink_env,
    flink_paths,
    install_python_jar_in_lib,
    render_flink_conf,
)
from payline.flink.rest import FlinkRest
from payline.local.procs import (
    ancestors,
    cmdline,
    listening_ports,
    ours,
    pids_text,
    port_open,
    read_pid,
    strays,
    tail,
    terminate,
    wait_until,
)
from runtime import progress
from runtime.settings import Config


def flink_pids(cfg: Config) -> dict[str, list[int]]:
    """Running JobManager and TaskManager pids from the pid files start-cluster.sh wrote."""
    fp = flink_paths(cfg)
    out: dict[str, list[int]] = {"jobmanager": [], "taskmanager": []}
    for role, pattern in (("jobmanager", "*standalonesession.pid"),
                          ("taskmanager", "*taskexecutor.pid")):
        for f in fp.pids.glob(pattern) if fp.pids.is_dir() else []:
            out[role] += [p for p in read_pid(f) if ours(p, str(fp.conf))]
    return out


def any_flink_pid(cfg: Config) -> list[int]:
    """The pids of every daemon of the cluster."""
    p = flink_pids(cfg)
    return p["jobmanager"] + p["taskmanager"]


def flink_up(cfg: Config, log=print) -> None:
    fc = cfg.flink
    fp = flink_paths(cfg)
    pids = flink_pids(cfg)
    progress.phase("flink: starting the cluster")
    ready = f"a TaskManager to register at {fc.rest_url}"
    if pids["jobmanager"] and pids["taskmanager"]:
        if wait_until(FlinkRest.of(cfg).ready, fc.start_timeout_s, lambda: any_flink_pid(cfg),
                      ready):
            log(f"flink: already running, web UI {fc.rest_url}")
            return
    if pids["jobmanager"] or pids["taskmanager"]:  # half a cluster: start it again, whole
        terminate(pids["jobmanager"] + pids["taskmanager"])
    for port, key in ((fc.rest_port, "flink.rest_port"),
                      (fc.jobmanager_rpc_port, "flink.jobmanager_rpc_port")):
        if port_open(fc.host, port):
            raise StackError(f"flink: port {port} ({key}) is already in use by another process; "
                             f"stop it or set {key}")
    render_flink_conf(cfg)
    install_python_jar_in_lib()
    for f in fp.pids.glob("*.pid"):
        f.unlink()
    proc = subprocess.run([flink_bin("start-cluster.sh")], env=flink_env(cfg),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise StackError(f"flink: start-cluster.sh failed (exit {proc.returncode}); logs in "
                         f"{fp.logs}\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    if not wait_until(FlinkRest.of(cfg).ready, fc.start_timeout_s, lambda: any_flink_pid(cfg),
                      ready):
        pids = flink_pids(cfg)
        part = "JobManager" if not pids["jobmanager"] else "TaskManager"
        pattern = "standalonesession" if part == "JobManager" else "taskexecutor"
        logs = sorted(fp.logs.glob(f"*{pattern}*.log"))
        logfile = logs[-1] if logs else fp.logs
        raise StackError(
            f"flink: the {part} did not become ready within {fc.start_timeout_s} s "
            f"(flink.start_timeout_s); its log: {logfile}\n{tail(logfile)}"
        )
    ov = FlinkRest.of(cfg).overview()
    log(f"flink: up, web UI {fc.rest_url} ({ov.get('taskmanagers')} TaskManager, "
        f"{ov.get('slots-total')} slots; logs {fp.logs})")


def daemon_start(cfg: Config, script: str) -> None:
    """One more Flink daemon of this cluster (``taskmanager.sh`` / ``jobmanager.sh start``)."""
    proc = subprocess.run([flink_bin(script), "start"], env=flink_env(cfg),
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise StackError(f"flink: {script} start failed (exit {proc.returncode})\n"
                         f"{proc.stdout[-1500:]}{proc.stderr[-1500:]}")


# what the command line of a TaskManager's Python worker holds (pyflink-udf-runner.sh starts
# ``python -m pyflink.fn_execution.beam.beam_boot`` piped to ``tee .../flink-python-udf-boot.log``,
# which starts the SDK worker), and of a TaskManager's JVM
PYTHON_WORKER_MARKERS = ("pyflink-udf-runner.sh", "pyflink.fn_execution",
                         "flink-python-udf-boot.log")


TASKMANAGER_MAIN = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"


def orphaned_python_workers(cfg: Config) -> list[int]:
    """The cluster's Python worker processes whose TaskManager is gone (killed, crashed): no
    running TaskManager of the cluster among their ancestors. They are left re-parented and
    hold their memory until stopped."""
    started = strays(flink_paths(cfg).conf)
    live = set(flink_pids(cfg)["taskmanager"]) | {
        p for p in started if TASKMANAGER_MAIN in cmdline(p)}
    return [p for p in started if p not in live and not ancestors(p) & live
            and any(m in cmdline(p) for m in PYTHON_WORKER_MARKERS)]


def taskmanager_start(cfg: Config, log=print) -> None:
    """Start one more TaskManager for the running cluster (after one was lost or killed);
    first stop the Python workers a lost TaskManager left behind."""
    orphans = orphaned_python_workers(cfg)
    if orphans:
        terminate(orphans, timeout_s=10)
        log(f"flink: stopped {len(orphans)} Python worker process"
            f"{'' if len(orphans) == 1 else 'es'} of a lost TaskManager: {pids_text('', orphans)}")
    daemon_start(cfg, "taskmanager.sh")
    log("flink: TaskManager started")


def taskmanagers(cfg: Config) -> list[dict]:
    """The registered TaskManagers (REST /taskmanagers) with ``pid`` (matched by the RPC port
    of their ``path``, None when not one of this cluster's processes) and ``busy`` (a slot in
    use)."""
    registered = FlinkRest.of(cfg).taskmanagers()
    pids = flink_pids(cfg)["taskmanager"]
    by_port = {port: pid for pid in pids for port in listening_ports(pid)}
    out = []
    for tm in registered:
        port = tm.get("path", "").rsplit(":", 1)[-1].split("/", 1)[0]
        out.append({"id": tm["id"], "pid": by_port.get(int(port)) if port.isdigit() else None,
                    "busy": tm.get("freeSlots", 0) < tm.get("slotsNumber", 0)})
    return out


def registered_taskmanagers(cfg: Config) -> int:
    try:
        return FlinkRest.of(cfg).overview().get("taskmanagers", 0)
    except FlinkError:
        return 0


def wait_taskmanagers(cfg: Config, count: int, timeout_s: float | None = None) -> None:
    """Until ``count`` TaskManagers are registered (StackError after flink.start_timeout_s)."""
    timeout_s = cfg.flink.start_timeout_s if timeout_s is None else timeout_s
    if not wait_until(lambda: registered_taskmanagers(cfg) >= count, timeout_s,
                      lambda: any_flink_pid(cfg)):
        raise StackError(f"flink: {count} TaskManagers not registered within {timeout_s} s "
                         f"(flink.start_timeout_s); logs in {flink_paths(cfg).logs}")


def jobmanager_start(cfg: Config, log=print) -> None:
    """Start the JobManager again (after it was lost) and wait until a TaskManager is
    registered with it. Without HA services the jobs it ran are gone: they are started again
    from their last retained checkpoints (payline.soak does that)."""
    daemon_start(cfg, "jobmanager.sh")
    if not wait_until(FlinkRest.of(cfg).ready, cfg.flink.start_timeout_s,
                      lambda: any_flink_pid(cfg)):
        raise StackError(f"flink: the JobManager did not come back within "
                         f"{cfg.flink.start_timeout_s} s (flink.start_timeout_s); logs in "
                         f"{flink_paths(cfg).logs}")
    log("flink: JobManager started")


def flink_down(cfg: Config, log=print) -> None:
    pids = flink_pids(cfg)
    every = pids["taskmanager"] + pids["jobmanager"]
    if every:
        terminate(every)
        log("flink: stopped (" + ", ".join(
            t for t in (pids_text("JobManager", pids["jobmanager"]),
                        pids_text("TaskManager", pids["taskmanager"])) if t) + ")")
    else:
        log("flink: not running")
    fp = flink_paths(cfg)
    # A Python worker process (process mode; the transactions job's vectorised validation) is
    # the TaskManager's child; one whose TaskManager was killed (kill -9, a crash) is left
    # behind, re-parented, and runs on: stop what the cluster's processes left
    left = strays(fp.conf)
    if left:
        terminate(left)
        log(f"flink: stopped {len(left)} process{'' if len(left) == 1 else 'es'} left "
            f"behind by a TaskManager (Python workers): pid {', '.join(map(str, left))}")
    if fp.pids.is_dir():
        for f in fp.pids.glob("*.pid"):
            f.unlink()
    clear_working_dirs(fp, log)


def clear_working_dirs(fp: FlinkPaths, log=print) -> None:
    """Empty io.tmp.dirs once no process of the cluster runs. A TaskManager removes its own
    working directory when it stops cleanly; one that was killed (a test, the OOM killer, a
    crash) leaves its RocksDB instances behind, hundreds of MB each, which nothing reads again
    (recovery reads checkpoints), and every JVM start unpacks its RPC jar there."""
    if not fp.tmp.is_dir():
        return
    marker = str(fp.conf)
    if any(ours(int(e), marker) for e in os.listdir("/proc") if e.isdigit()):
        log(f"flink: a process of this cluster still runs; {fp.tmp} left as it is")
        return
    left = list(fp.tmp.iterdir())
    for p in left:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    workers = sum(p.name.startswith("tm_") for p in left)
    if workers:
        log(f"flink: removed the working files of {workers} TaskManager"
            f"{'' if workers == 1 else 's'} from {fp.tmp}")


def prometheus_ports(cfg: Config) -> list[int]:
    fc = cfg.flink
    return [p for p in range(fc.prometheus_port_first, fc.prometheus_port_last + 1)
            if port_open(fc.host, p)]
