"""The soak's faults: a table from kind to the function that injects it.

Each function takes the running :class:`payline.soak.runner.Soak`, the fault's result (it fills
``detail``, or ``outcome`` when it skips) and the moment of the injection, and returns the
moment its recovery counts from, or None when it has waited for the recovery itself (or
skipped).
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from payline.errors import SoakError
from payline.local import archiver_proc, broker, cluster
from payline.release import lifecycle
from payline.release.records import current_deployment
from payline.soak.checks import latest_checkpoint
from payline.soak.plan import JOBS, KINDS, UPGRADED_JOB, FaultResult
from payline.soak.readonly import ReadOnly


def _quiet(_line: str) -> None:
    pass


def _kill(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGKILL)


def taskmanager_kill(soak, res: FaultResult, since: float) -> float | None:
    """``kill -9`` of the TaskManagers running tasks; an idle standby takes their tasks over
    at once, and their replacements start after the recovery (not competing with it for
    CPU); without a standby a new TaskManager starts at once."""
    cfg = soak.cfg
    tms = cluster.taskmanagers(cfg)
    pids = [tm["pid"] for tm in tms if tm["busy"] and tm["pid"]] or [
        tm["pid"] for tm in tms if tm["pid"]] or cluster.flink_pids(cfg)["taskmanager"]
    standby = len(tms) - len(pids)
    _kill(pids)
    if standby <= 0:
        for _ in pids:
            cluster.taskmanager_start(cfg, log=_quiet)
    res.detail = (f"kill -9 of pid {', '.join(map(str, pids))}; "
                  + (f"tasks restarted on {standby} standby TaskManager"
                     f"{'s' if standby > 1 else ''}, replacement started after the "
                     f"recovery" if standby > 0 else "a new TaskManager"))
    soak.wait_recovered(res, since)
    if standby > 0:  # the next standby; not waited for (a later kill finds it or not)
        for _ in pids:
            cluster.taskmanager_start(cfg, log=_quiet)
    return None


def jobmanager_restart(soak, res: FaultResult, since: float) -> float | None:
    """``kill -9`` of the JobManager, started again. Without HA services its jobs are gone:
    both are deployed again from their last retained checkpoint, as an operator would."""
    cfg = soak.cfg
    before = {job: lifecycle.running_job(cfg, job) for job in JOBS}
    _kill(cluster.flink_pids(cfg)["jobmanager"])
    time.sleep(1)
    cluster.jobmanager_start(cfg, log=_quiet)
    chks = {job: latest_checkpoint(cfg, before[job]) if before[job] else None for job in JOBS}

    def redeploy(job):
        current = current_deployment(cfg, job)
        lifecycle.deploy(cfg, job, current["version"], current.get("parallelism"), chks[job],
                         tuple(current.get("job_args", [])),
                         action="redeploy-after-jobmanager-loss")

    # both at once: each `flink run` spends most of its time in the client
    with ThreadPoolExecutor(len(JOBS)) as pool:
        list(pool.map(redeploy, JOBS))
    res.detail = "kill -9, started again; redeployed " + ", ".join(
        f"{job} from {Path(c).name if c else 'its start (no checkpoint)'}"
        for job, c in chks.items())
    return since


def broker_kill(soak, res: FaultResult, since: float) -> float | None:
    """``kill -9`` of the Kafka broker, started again after ``soak.broker_down_s``."""
    _kill(broker.kafka_pids(soak.cfg))
    time.sleep(soak.sc.broker_down_s)
    broker.kafka_up(soak.cfg, log=_quiet)
    res.detail = f"kill -9, down {soak.sc.broker_down_s} s, started again"
    return since


def archiver_kill(soak, res: FaultResult, since: float) -> float | None:
    """``kill -9`` of the archiver, started again."""
    _kill(archiver_proc.archiver_pids(soak.cfg))
    time.sleep(0.5)
    archiver_proc.archiver_up(soak.cfg, soak.cli_args, log=_quiet)
    res.detail = "kill -9, started again"
    return since


def upgrade(soak, res: FaultResult, since: float) -> float | None:
    """The upgraded job to the other soak release, through a stop-with-savepoint."""
    current = current_deployment(soak.cfg, UPGRADED_JOB)["version"]
    target = next(v for v in soak.versions[UPGRADED_JOB] if v != current)
    rec = lifecycle.upgrade(soak.cfg, UPGRADED_JOB, target)
    res.detail = (f"{UPGRADED_JOB} {current} -> {target} (stop-with-savepoint "
                  f"{rec['stop_with_savepoint_s']} s, running after "
                  f"{rec['until_running_s']} s)")
    return since


def rollback(soak, res: FaultResult, since: float) -> float | None:
    """The last upgrade rolled back with ``--keep-state`` (nothing replayed)."""
    current = current_deployment(soak.cfg, UPGRADED_JOB)["version"]
    rec = lifecycle.rollback(soak.cfg, UPGRADED_JOB, keep_state=True)
    res.detail = f"{UPGRADED_JOB} {current} -> {rec['version']} (--keep-state)"
    return since


def checkpoint_readonly(soak, res: FaultResult, since: float) -> float | None:
    """The checkpoint directory read-only for ``soak.readonly_s``; recovery counts from the
    moment it is writable again."""
    ro = ReadOnly(soak.cfg.paths.checkpoints_dir)
    failed_before = soak.failed_checkpoints()
    try:
        ro.start()
    except SoakError as exc:
        res.outcome = f"skipped: {exc}"
        return None
    how = ro.how
    try:
        time.sleep(soak.sc.readonly_s)
    finally:
        ro.stop()
    writable = time.time()
    failed = soak.failed_checkpoints() - failed_before
    res.detail = (f"{how} for {soak.sc.readonly_s} s; {failed} checkpoints failed meanwhile; "
                  f"recovery counted from the end")
    return writable


FAULTS = {"taskmanager_kill": taskmanager_kill, "jobmanager_restart": jobmanager_restart,
          "broker_kill": broker_kill, "archiver_kill": archiver_kill, "upgrade": upgrade,
          "rollback": rollback, "checkpoint_readonly": checkpoint_readonly}
assert tuple(FAULTS) == KINDS, "every fault kind of the plan has its function, in its order"
