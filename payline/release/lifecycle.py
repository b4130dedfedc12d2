"""Deploy, savepoint, upgrade and roll back a streaming job's releases on a Flink cluster
(local or remote) through the one REST client, each recorded and audited (:mod:`.records`)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from payline.errors import FlinkError, OpsError
from payline.flink.rest import ENDED_STATES, FlinkRest
from payline.release.client import Prepared, submit_release
from payline.release.operator_ids import name_operators, unmatched_lines, unmatched_operators
from payline.release.records import (
    append,
    audit,
    current_deployment,
    now_ms,
    record_file,
    savepoints,
    upgrades,
)
from payline.release.releases import check_job, manifest_of
from runtime import progress
from runtime.errors import UsageError
from runtime.settings import Config


def running_job(cfg: Config, job: str) -> str | None:
    """The id of the job's live Flink job (FlinkUnreachable when the cluster does not
    answer)."""
    return FlinkRest.of(cfg).live_job(check_job(job).name)


def wait_running(cfg: Config, job_id: str, timeout_s: float = 120.0) -> None:
    """Until every task of the job runs; OpsError with the root cause when it fails."""
    rest = FlinkRest.of(cfg)
    started = time.monotonic()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        info = rest.job(job_id)
        state = info.get("state")
        tasks = info.get("vertices", [])
        progress.waiting(f"job {job_id[:8]} to run: {state}, "
                         f"{sum(v['status'] == 'RUNNING' for v in tasks)}/{len(tasks)} tasks "
                         f"running", started)
        if state in ENDED_STATES:
            root = rest.job_root_cause(job_id)
            raise OpsError(f"job {job_id} {state}: {unmatched_lines(root)}{root[:3000]}")
        if state == "RUNNING" and all(v["status"] == "RUNNING"
                                      for v in info.get("vertices", [])):
            return
        time.sleep(1)
    raise OpsError(f"job {job_id}: not running after {timeout_s:.0f} s")


def _wait_savepoint(cfg: Config, job_id: str, request_id: str, timeout_s: float) -> str:
    started = time.monotonic()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        progress.waiting(f"the savepoint of job {job_id[:8]} to complete", started)
        st = FlinkRest.of(cfg).savepoint_status(job_id, request_id)
        if st.get("status", {}).get("id") == "COMPLETED":
            op = st.get("operation", {})
            if "failure-cause" in op:
                cause = op["failure-cause"].get("stack-trace", "")[:2000]
                raise OpsError(f"savepoint of job {job_id} failed: {cause}")
            return op["location"]
        time.sleep(0.5)
    raise OpsError(f"savepoint of job {job_id}: not done after {timeout_s:.0f} s")


def _dir_size(location: str) -> int:
    path = Path(location.removeprefix("file:"))
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() \
        else 0


def record_savepoint(cfg, job, job_id, location, reason) -> dict:
    current = current_deployment(cfg, job)
    rec = {"job": job, "job_id": job_id, "path": location, "size_bytes": _dir_size(location),
           "time_ms": now_ms(), "version": current["version"] if current else None,
           "deployment": current["deployment"] if current else None, "reason": reason}
    append(record_file(cfg, "savepoints"), rec)
    return rec


def deploy(cfg: Config, job: str, version: str | None = None, parallelism: int | None = None,
           from_savepoint: str | None = None, job_args: tuple[str, ...] = (),
           action: str = "deploy", allow_non_restored: bool = False,
           prepared: Prepared | None = None) -> dict:
    """Submit a release (through a ``prepared`` client when given), wait until it runs, record
    the deployment."""
    check_job(job)
    manifest = manifest_of(cfg, job, version)
    if action == "deploy":
        already = running_job(cfg, job)
        if already:
            raise OpsError(f"deploy: {job} is already running (job {already}); use "
                           f"`payline upgrade {job} --version V`")
    record = {"job": job, "version": manifest["version"], "parallelism": parallelism,
              "from_savepoint": from_savepoint, "time_ms": now_ms(), "action": action,
              "deployment": f"{job}-{now_ms()}", "job_args": list(job_args)}
    try:
        t0 = time.monotonic()
        progress.phase(f"{action} {job} {manifest['version']}: submitting")
        job_id = (prepared.submit(from_savepoint, allow_non_restored) if prepared else
                  submit_release(cfg, manifest, parallelism, from_savepoint, list(job_args),
                          allow_non_restored))
        record["job_id"] = job_id
        record["submit_s"] = round(time.monotonic() - t0, 1)
        progress.phase(f"{action} {job} {manifest['version']}: starting")
        wait_running(cfg, job_id)
        record["until_running_s"] = round(time.monotonic() - t0, 1)
    except OpsError as exc:
        record["outcome"] = "failed"
        append(record_file(cfg, "deployments"), record)
        audit(cfg, action, job, "failed", version=manifest["version"],
              from_savepoint=from_savepoint, error=str(exc)[:500])
        raise
    record["outcome"] = "running"
    append(record_file(cfg, "deployments"), record)
    audit(cfg, action, job, "ok", version=manifest["version"], job_id=job_id,
          parallelism=parallelism, from_savepoint=from_savepoint)
    return record


def savepoint(cfg: Config, job: str, reason: str = "manual", stop: bool = False,
              timeout_s: float = 300) -> dict:
    """Trigger a savepoint of the running ``job`` (``stop``: stop-with-savepoint, the job
    finishes once it is written); record and audit it."""
    check_job(job)
    action = "stop-with-savepoint" if stop else "savepoint"
    job_id = running_job(cfg, job)
    if not job_id:
        raise OpsError(f"{reason}: {job} is not running")
    target = f"file://{cfg.paths.checkpoints_dir / 'savepoints'}"
    progress.phase(f"{action} of {job}")
    try:
        request = FlinkRest.of(cfg).trigger_savepoint(job_id, target, stop)
        location = _wait_savepoint(cfg, job_id, request, timeout_s)
    except (OpsError, FlinkError) as exc:
        audit(cfg, action, job, "failed", job_id=job_id, error=str(exc)[:500])
        raise
    rec = record_savepoint(cfg, job, job_id, location, reason)
    audit(cfg, action, job, "ok", job_id=job_id, savepoint=location)
    for old in prune_savepoints(cfg, job):
        audit(cfg, "delete-savepoint", job, "ok", savepoint=old, reason="retention")
    return rec


def prune_savepoints(cfg: Config, job: str) -> list[str]:
    """Delete the job's savepoints beyond the newest ``ops.savepoints_retained``, except the
    one its last upgrade can roll back to; returns the deleted paths."""
    done = upgrades(cfg, job)
    keep_for_rollback = done[-1]["savepoint"] if done else None
    live = savepoints(cfg, job, include_deleted=False)
    out = []
    for r in live[:-cfg.ops.savepoints_retained]:
        if r["path"] == keep_for_rollback:
            continue
        shutil.rmtree(Path(r["path"].removeprefix("file:")), ignore_errors=True)
        append(record_file(cfg, "savepoints_deleted"),
               {"job": job, "path": r["path"], "time_ms": now_ms()})
        out.append(r["path"])
    return out


def upgrade(cfg: Config, job: str, version: str, allow_non_restored: bool = False) -> dict:
    """Stop-with-savepoint, then start ``version`` from it. When the new version cannot take
    the state, the old version starts again from the same savepoint and OpsError names the
    operators whose state had no place in the new version."""
    check_job(job)
    target = manifest_of(cfg, job, version)
    current = current_deployment(cfg, job)
    if current is None or not running_job(cfg, job):
        raise OpsError(f"upgrade: {job} is not running as a deployment; use `payline deploy`")
    prepared = _prepare(cfg, target, current)
    t0 = time.monotonic()
    try:
        sp = savepoint(cfg, job, "upgrade", stop=True)
    except BaseException:
        if prepared:
            prepared.abort()
        raise
    stopped_s = round(time.monotonic() - t0, 1)
    try:
        rec = deploy(cfg, job, target["version"], current.get("parallelism"), sp["path"],
                     tuple(current.get("job_args", [])), action="upgrade",
                     allow_non_restored=allow_non_restored, prepared=prepared)
    except OpsError as exc:
        deploy(cfg, job, current["version"], current.get("parallelism"), sp["path"],
               tuple(current.get("job_args", [])), action="restore-after-failed-upgrade")
        ids = unmatched_operators(str(exc))
        old = manifest_of(cfg, job, current["version"])
        what = ("; the state of " + ", ".join(name_operators(ids, old.get("uids", [])))
                + " has no operator in the new version (--allow-non-restored-state drops it)"
                if ids else f": {str(exc)[:1500]}")
        audit(cfg, "upgrade", job, "refused", version=target["version"],
              from_version=current["version"], savepoint=sp["path"], operators=ids)
        raise OpsError(f"upgrade: {job} {target['version']} cannot start from the savepoint "
                       f"{sp['path']}{what}. {job} {current['version']} runs again from it."
                       ) from None
    rec["upgraded_from"] = current["version"]
    rec["savepoint"] = sp["path"]
    rec["stop_with_savepoint_s"] = stopped_s
    rec["prepared_client"] = prepared is not None
    rec["stopped_until_running_s"] = round(time.monotonic() - t0, 1)
    append(record_file(cfg, "upgrades"), {
        "job": job, "from_version": current["version"], "to_version": target["version"],
        "savepoint": sp["path"], "time_ms": now_ms()})
    return rec


def _prepare(cfg: Config, target: dict, current: dict) -> Prepared | None:
    """The target release's client, started before the running version stops (None for a
    release older than the handoff: it is submitted after the stop, as before)."""
    if not Prepared.supported(cfg, target):
        return None
    return Prepared(cfg, target, current.get("parallelism"),
                    list(current.get("job_args", [])))


def rollback(cfg: Config, job: str, to_savepoint: str | None = None,
             keep_state: bool = False) -> dict:
    """Back to the version before the last upgrade, from the savepoint taken at that upgrade
    (or ``to_savepoint``). That replays what the new version did since the upgrade: its
    exactly-once outputs since then are written again (duplicates downstream).

    ``keep_state``: stop the running version with a savepoint and start the previous version
    from that instead (its state must be readable by the previous version): nothing is
    replayed, no output is written twice. When the previous version cannot take that state,
    the running version starts again from the same savepoint and OpsError says why."""
    check_job(job)
    if keep_state and to_savepoint:
        raise UsageError("rollback: --keep-state and --to-savepoint exclude each other")
    ups = upgrades(cfg, job)
    if not ups:
        raise OpsError(f"rollback: {job} has no upgrade to roll back")
    last = ups[-1]
    current = current_deployment(cfg, job)
    parallelism = current.get("parallelism") if current else None
    job_args = tuple(current.get("job_args", [])) if current else ()
    job_id = running_job(cfg, job)
    if keep_state:
        if not job_id or current is None:
            raise OpsError(f"rollback --keep-state: {job} is not running")
        target = manifest_of(cfg, job, last["from_version"])
        prepared = _prepare(cfg, target, current)
        try:
            to_savepoint = savepoint(cfg, job, "rollback", stop=True)["path"]
        except BaseException:
            if prepared:
                prepared.abort()
            raise
        try:
            rec = deploy(cfg, job, last["from_version"], parallelism, to_savepoint, job_args,
                         action="rollback", prepared=prepared)
        except OpsError as exc:
            deploy(cfg, job, current["version"], parallelism, to_savepoint, job_args,
                   action="restore-after-failed-rollback")
            raise OpsError(f"rollback: {job} {last['from_version']} cannot start from the "
                           f"state of {current['version']} ({to_savepoint}): "
                           f"{str(exc)[:1500]}. {job} {current['version']} runs again from "
                           f"it.") from None
    else:
        if job_id:
            FlinkRest.of(cfg).cancel(job_id)
        rec = deploy(cfg, job, last["from_version"], parallelism,
                     to_savepoint or last["savepoint"], job_args, action="rollback")
    append(record_file(cfg, "upgrades"), {
        "job": job, "rolled_back": last["to_version"], "to_version": last["from_version"],
        "from_version": last["to_version"], "savepoint": to_savepoint or last["savepoint"],
        "time_ms": now_ms(), "rollback": True})
    return rec
