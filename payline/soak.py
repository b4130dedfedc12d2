"""`payline soak`: the chaos soak. The reconciliation is the oracle.

Generated traffic (the [generator] mix: duplicates, conflicting copies, out-of-order, late and
bad records) runs at ``soak.rate_per_s`` with ``soak.spikes`` bursts of ``spike_factor`` x for
``spike_s`` seconds, for ``duration_s``, into the local stack running the transactions job, the
fraud job (both as releases, payline/ops.py) and the archiver. Meanwhile ``soak.faults`` faults
are injected one at a time, at moments drawn from ``soak.seed`` (when the faults take longer
than planned, the traffic goes on until ``cooldown_s`` after the last one has recovered, so every
fault of the plan happens under traffic):

- ``taskmanager_kill``: ``kill -9`` of the TaskManagers running tasks. With
  ``soak.standby_taskmanagers`` (idle TaskManagers started after the deploy, as a production
  cluster keeps spare slots) the tasks restart on a standby at once and the replacement starts
  after the recovery; without one, a new TaskManager is started at once and the jobs wait for it;
- ``jobmanager_restart``: the JobManager ``kill -9`` and started again. Without HA services
  (Flink's standalone HA needs ZooKeeper or Kubernetes) its jobs are gone; both jobs are
  deployed again from their last retained checkpoint, as an operator would;
- ``broker_kill``: the Kafka broker ``kill -9``, restarted after ``broker_down_s``;
- ``archiver_kill``: the archiver ``kill -9``, started again;
- ``upgrade`` / ``rollback``: the transactions job upgraded to the other soak release through a
  stop-with-savepoint, and rolled back with ``--keep-state`` (a savepoint of the running
  version, so nothing is replayed);
- ``checkpoint_readonly``: the checkpoint directory made read-only for ``readonly_s`` (a
  read-only bind mount over it when this process may mount, else ``chmod``); checkpoints fail
  and the jobs ride it out within ``flink.tolerable_failed_checkpoints``.

The recovery time of a fault runs from its injection (for ``checkpoint_readonly``: from the
moment the directory is writable again) until both jobs run and each has written committed
output produced after that moment (the transactions job: aggregates, late or DLQ records read
``read_committed``; the fraud job: alerts); for ``archiver_kill`` until the archiver has
written a new Parquet file.

Afterwards: every closed window of the soak is reconciled from the raw log (zero unexplained,
every alert present), every record of every topic must be in the raw log exactly once, and no
exactly-once output may hold a record twice (aggregates by key, DLQ records by source
partition/offset, late records by txn_id: CONTRACT.md §5). A table of the faults and these
figures is printed and written to ``<run_dir>/soak/<started>/``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from payline.config import Config, ConfigError

KINDS = ("taskmanager_kill", "jobmanager_restart", "broker_kill", "archiver_kill", "upgrade",
         "rollback", "checkpoint_readonly")
JOBS = ("transactions", "fraud")
UPGRADED_JOB = "transactions"


class SoakError(RuntimeError):
    """The soak could not run as configured; the message says why."""


@dataclass(frozen=True)
class PlannedFault:
    at_s: float  # seconds after the traffic started
    kind: str


@dataclass
class FaultResult:
    kind: str
    planned_at_s: float
    injected_at_s: float | None = None
    recovery_s: float | None = None
    outcome: str = "pending"  # recovered | not recovered | skipped: ... | not injected: ...
    detail: str = ""


def check_kinds(kinds: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"conf: soak.kinds: unknown fault kind {unknown[0]!r} "
                          f"(known: {', '.join(KINDS)})")
    if "rollback" in kinds and "upgrade" not in kinds:
        raise ConfigError("conf: soak.kinds: rollback needs upgrade in the list (it rolls an "
                          "upgrade back)")
    return kinds


def plan_faults(seed: int, count: int, kinds: tuple[str, ...], duration_s: float,
                warmup_s: float, cooldown_s: float) -> list[PlannedFault]:
    """``count`` faults at uniform random moments of [warmup_s, duration_s - cooldown_s],
    every kind at least once when ``count`` >= len(kinds), a rollback only after an upgrade
    that it undoes. The same seed gives the same plan."""
    check_kinds(kinds)
    if count == 0:
        return []
    if duration_s - cooldown_s <= warmup_s:
        raise ConfigError(f"conf: soak.duration_s must exceed soak.warmup_s + soak.cooldown_s "
                          f"({warmup_s:g} + {cooldown_s:g}), got {duration_s:g}")
    rng = random.Random(seed)
    order = [kinds[i % len(kinds)] for i in range(count)]
    rng.shuffle(order)
    pending = 0  # upgrades not rolled back yet
    for i, kind in enumerate(order):
        if kind == "rollback" and not pending:
            later = [j for j in range(i + 1, len(order)) if order[j] == "upgrade"]
            if later:
                order[i], order[later[0]] = order[later[0]], order[i]
            else:
                order[i] = "upgrade"
        pending += {"upgrade": 1, "rollback": -1}.get(order[i], 0)
    times = sorted(rng.uniform(warmup_s, duration_s - cooldown_s) for _ in range(count))
    return [PlannedFault(round(t, 1), k) for t, k in zip(times, order, strict=True)]


def plan_spikes(seed: int, count: int, factor: float, spike_s: float, duration_s: float):
    from payline.generator import Spike

    rng = random.Random(seed + 1)
    if count == 0 or duration_s <= spike_s:
        return ()
    return tuple(sorted((Spike(factor, spike_s, round(rng.uniform(0, duration_s - spike_s), 1))
                         for _ in range(count)), key=lambda s: s.at_s))


# --- watching the committed outputs ---------------------------------------------------------


class OutputWatch:
    """A read_committed consumer of the output topics from their current end, in a thread:
    when each topic last received a record."""

    def __init__(self, cfg: Config, topics: list[str]):
        from confluent_kafka import OFFSET_END, Consumer, TopicPartition

        self._consumer = Consumer({
            "bootstrap.servers": cfg.kafka.bootstrap, "group.id": "payline-soak-watch",
            "enable.auto.commit": False, "isolation.level": "read_committed",
            "log_level": 0,
        })
        meta = self._consumer.list_topics(timeout=30)
        self._consumer.assign([TopicPartition(t, p, OFFSET_END)
                               for t in topics for p in meta.topics[t].partitions])
        self.arrivals: dict[str, list[float]] = {t: [] for t in topics}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msgs = self._consumer.consume(num_messages=10_000, timeout=0.5)
            now = time.time()
            with self._lock:
                for m in msgs:
                    if m.error() is None:
                        self.arrivals[m.topic()].append(now)

    def first_after(self, topics: list[str], t: float) -> float | None:
        """The first time after ``t`` a record of any of ``topics`` arrived, or None."""
        with self._lock:
            found = [next((a for a in self.arrivals[x] if a > t), None) for x in topics]
        found = [f for f in found if f is not None]
        return min(found) if found else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


# --- the checkpoint directory made read-only --------------------------------------------------


class ReadOnly:
    """The directory read-only for a while: a read-only bind mount over it (root with
    CAP_SYS_ADMIN), else ``chmod a-w`` on its tree (a non-root user). ``how`` says which;
    ``start()`` raises SoakError when neither works."""

    def __init__(self, path: Path):
        self.path = path.resolve()
        self.how: str | None = None
        self._modes: dict[Path, int] = {}

    def start(self) -> None:
        if os.geteuid() == 0:
            bind = subprocess.run(["mount", "--bind", str(self.path), str(self.path)],
                                  capture_output=True, text=True)
            if bind.returncode == 0:
                ro = subprocess.run(["mount", "-o", "remount,bind,ro", str(self.path)],
                                    capture_output=True, text=True)
                if ro.returncode == 0:
                    self.how = "read-only bind mount"
                    self._verify()
                    return
                subprocess.run(["umount", str(self.path)], capture_output=True)
            raise SoakError(f"cannot make {self.path} read-only: running as root without the "
                            f"right to mount ({(bind.stderr or '').strip()[:200]})")
        for p in [self.path, *self.path.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                self._modes[p] = p.stat().st_mode
                p.chmod(self._modes[p] & ~0o222)
        self.how = "chmod a-w"
        self._verify()

    def _verify(self) -> None:
        probe = self.path / ".soak-probe"
        try:
            probe.write_text("x")
        except OSError:
            return
        probe.unlink()
        self.stop()
        raise SoakError(f"{self.path} is still writable after {self.how}")

    def stop(self) -> None:
        if self.how == "read-only bind mount":
            subprocess.run(["umount", str(self.path)], capture_output=True, check=True)
        for p, mode in self._modes.items():
            p.chmod(mode)
        self._modes.clear()
        self.how = None


# --- the soak -----------------------------------------------------------------------------------


@dataclass
class Soak:
    cfg: Config
    cli_args: list[str]
    log: object = print
    results: list[FaultResult] = field(default_factory=list)

    def __post_init__(self):
        self.sc = self.cfg.soak
        check_kinds(self.sc.kinds)
        self.started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        self.out_dir = self.cfg.paths.run_dir / "soak" / self.started
        self.versions: dict[str, list[str]] = {}
        self.watch: OutputWatch | None = None
        self.t0 = 0.0

    # the parts ------------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        stamp = f"+{time.time() - self.t0:6.1f}s " if self.t0 else ""
        self.log(f"soak: {stamp}{text}")

    def prepare(self) -> None:
        from payline import ops, security, stack

        if security.active(self.cfg):
            # its watcher, traffic and checks are plain clients of the broker
            raise SoakError("the soak runs on a plaintext stack: security.enabled is on (or "
                            f"{self.cfg.paths.run_dir} was started with `up --secure`); run it "
                            "with a --conf of its own run dir and ports")
        stack.up(self.cfg, self.log)
        stack.archiver_up(self.cfg, self.cli_args, self.log)
        for job in JOBS:
            if ops.running_job(self.cfg, job):
                raise SoakError(f"the {job} job is already running on {self.cfg.flink.rest_url}; "
                                f"the soak deploys its own releases: stop it first (or run the "
                                f"soak on its own stack with --conf)")
        for job in JOBS:
            names = [f"soak-{self.started}-a"] + (
                [f"soak-{self.started}-b"] if job == UPGRADED_JOB else [])
            for v in names:
                ops.release(self.cfg, job, v)
            self.versions[job] = names

        def deploy(job):
            rec = ops.deploy(self.cfg, job, self.versions[job][0],
                             job_args=tuple(self.cli_args))
            self._say(f"{job} {self.versions[job][0]} running (job {rec['job_id']}, "
                      f"{rec['until_running_s']} s)")

        # both at once: each `flink run` spends most of its time in the client
        with ThreadPoolExecutor(len(JOBS)) as pool:
            list(pool.map(deploy, JOBS))
        # standbys start after the deploy, so the jobs' tasks are on the first TaskManager
        n = self.sc.standby_taskmanagers
        if n:
            have = len(stack.taskmanagers(self.cfg))
            for _ in range(n):
                stack.taskmanager_start(self.cfg, log=lambda _: None)
            stack.wait_taskmanagers(self.cfg, have + n)
            self._say(f"{n} standby TaskManager{'s' if n > 1 else ''} registered")

    def traffic(self):
        """The generator's options: the [generator] mix at the soak's rate, with spikes."""
        import argparse
        import dataclasses

        from payline.cli import generator_options

        sc = self.sc
        # the schedule outlasts any run: the soak stops the traffic itself
        opts = generator_options(self.cfg, argparse.Namespace(
            count=None, duration=float(4 * sc.duration_s + sc.recovery_timeout_s * sc.faults),
            rate=float(sc.rate_per_s), seed=sc.seed))
        return dataclasses.replace(opts, spikes=plan_spikes(
            sc.seed, sc.spikes, sc.spike_factor, sc.spike_s, sc.duration_s))

    def _running(self) -> bool:
        from payline import ops

        for job in JOBS:
            jid = ops.running_job(self.cfg, job)
            if not jid:
                return False
            info = ops._rest(self.cfg, f"/jobs/{jid}")
            if info.get("state") != "RUNNING" or any(
                    v["status"] != "RUNNING" for v in info.get("vertices", [])):
                return False
        return True

    def _lake_newest(self) -> float:
        newest = 0.0
        for f in self.cfg.paths.raw_dir.glob("*/date=*/hour=*/part-*.parquet"):
            try:
                newest = max(newest, f.stat().st_mtime)
            except FileNotFoundError:
                pass
        return newest

    def _recovered(self, kind: str, since: float, after: float) -> float | None:
        """Seconds from ``since`` (the fault) until the fault's effect is over, None while it
        is not: output written after ``after`` (when the injection was done: the new process
        or job started, so what a job that was being stopped still committed does not count).
        """
        from payline import stack

        if not stack.archiver_pids(self.cfg):  # it died (not the one this fault killed)
            raise SoakError(f"the archiver is not running after {kind}; its log: "
                            f"{stack.archiver_paths(self.cfg)[1]}")
        if kind == "archiver_kill":
            newest = self._lake_newest()
            return newest - since if newest > after else None
        t = self.cfg.topics
        txn = self.watch.first_after([t.aggregates, t.late, t.dlq], after)
        alerts = self.watch.first_after([t.alerts], after)
        if txn is None or alerts is None:
            return None
        try:
            if not self._running():
                return None
        except Exception:  # noqa: BLE001 - the REST API is down while the JobManager is
            return None
        return max(txn, alerts) - since

    def _wait_recovered(self, res: FaultResult, since: float) -> None:
        after = time.time()
        deadline = time.monotonic() + self.sc.recovery_timeout_s
        while time.monotonic() < deadline:
            took = self._recovered(res.kind, since, after)
            if took is not None:
                res.recovery_s = round(took, 1)
                res.outcome = "recovered"
                return
            time.sleep(0.5)
        res.outcome = "not recovered"
        res.detail += f" (nothing after {self.sc.recovery_timeout_s} s)"

    def inject(self, res: FaultResult) -> None:
        from payline import ops, stack

        cfg, kind = self.cfg, res.kind
        since = time.time()
        res.injected_at_s = round(since - self.t0, 1)
        if kind == "taskmanager_kill":
            # the TaskManagers running tasks; an idle standby takes their tasks over at once,
            # and their replacements start after the recovery (not competing with it for CPU)
            tms = stack.taskmanagers(cfg)
            pids = [tm["pid"] for tm in tms if tm["busy"] and tm["pid"]] or [
                tm["pid"] for tm in tms if tm["pid"]] or stack.flink_pids(cfg)["taskmanager"]
            standby = len(tms) - len(pids)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            if standby <= 0:
                for _ in pids:
                    stack.taskmanager_start(cfg, log=lambda _: None)
            res.detail = (f"kill -9 of pid {', '.join(map(str, pids))}; "
                          + (f"tasks restarted on {standby} standby TaskManager"
                             f"{'s' if standby > 1 else ''}, replacement started after the "
                             f"recovery" if standby > 0 else "a new TaskManager"))
            self._wait_recovered(res, since)
            if standby > 0:  # the next standby; not waited for (a later kill finds it or not)
                for _ in pids:
                    stack.taskmanager_start(cfg, log=lambda _: None)
            return
        elif kind == "jobmanager_restart":
            before = {job: ops.running_job(cfg, job) for job in JOBS}
            pids = stack.flink_pids(cfg)["jobmanager"]
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            time.sleep(1)
            stack.jobmanager_start(cfg, log=lambda _: None)
            chks = {job: latest_checkpoint(cfg, before[job]) if before[job] else None
                    for job in JOBS}

            def redeploy(job):
                current = ops.current_deployment(cfg, job)
                ops.deploy(cfg, job, current["version"], current.get("parallelism"),
                           chks[job], tuple(current.get("job_args", [])),
                           action="redeploy-after-jobmanager-loss")

            # both at once: each `flink run` spends most of its time in the client
            with ThreadPoolExecutor(len(JOBS)) as pool:
                list(pool.map(redeploy, JOBS))
            res.detail = "kill -9, started again; redeployed " + ", ".join(
                f"{job} from {Path(c).name if c else 'its start (no checkpoint)'}"
                for job, c in chks.items())
        elif kind == "broker_kill":
            pids = stack.kafka_pids(cfg)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            time.sleep(self.sc.broker_down_s)
            stack.kafka_up(cfg, log=lambda _: None)
            res.detail = f"kill -9, down {self.sc.broker_down_s} s, started again"
        elif kind == "archiver_kill":
            pids = stack.archiver_pids(cfg)
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
            stack.archiver_up(cfg, self.cli_args, log=lambda _: None)
            res.detail = "kill -9, started again"
        elif kind == "upgrade":
            current = ops.current_deployment(cfg, UPGRADED_JOB)["version"]
            target = next(v for v in self.versions[UPGRADED_JOB] if v != current)
            rec = ops.upgrade(cfg, UPGRADED_JOB, target)
            res.detail = (f"{UPGRADED_JOB} {current} -> {target} (stop-with-savepoint "
                          f"{rec['stop_with_savepoint_s']} s, running after "
                          f"{rec['until_running_s']} s)")
        elif kind == "rollback":
            current = ops.current_deployment(cfg, UPGRADED_JOB)["version"]
            rec = ops.rollback(cfg, UPGRADED_JOB, keep_state=True)
            res.detail = f"{UPGRADED_JOB} {current} -> {rec['version']} (--keep-state)"
        elif kind == "checkpoint_readonly":
            ro = ReadOnly(cfg.paths.checkpoints_dir)
            failed_before = self._failed_checkpoints()
            try:
                ro.start()
            except SoakError as exc:
                res.outcome = f"skipped: {exc}"
                return
            how = ro.how
            try:
                time.sleep(self.sc.readonly_s)
            finally:
                ro.stop()
            since = time.time()
            failed = self._failed_checkpoints() - failed_before
            res.detail = (f"{how} for {self.sc.readonly_s} s; {failed} checkpoints "
                          f"failed meanwhile; recovery counted from the end")
        self._wait_recovered(res, since)

    def _failed_checkpoints(self) -> int:
        from payline import ops

        n = 0
        for job in JOBS:
            jid = ops.running_job(self.cfg, job)
            if jid:
                n += ops._rest(self.cfg, f"/jobs/{jid}/checkpoints").get(
                    "counts", {}).get("failed", 0)
        return n

    # the run --------------------------------------------------------------------------------

    def run(self) -> dict:
        from payline import generator

        sc = self.sc
        plan = plan_faults(sc.seed, sc.faults, sc.kinds, sc.duration_s, sc.warmup_s,
                           sc.cooldown_s)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        t = self.cfg.topics
        self.watch = OutputWatch(self.cfg, [t.aggregates, t.late, t.dlq, t.alerts])
        opts = self.traffic()
        sent: dict = {}
        stop = threading.Event()

        def send():
            try:
                with open(os.devnull, "w") as quiet:
                    sent["report"] = generator.send(self.cfg.kafka.bootstrap, opts,
                                                    stream=quiet, stop=stop)
            except Exception as exc:  # noqa: BLE001 - reported after the run
                sent["error"] = exc

        self._say(f"traffic: {sc.rate_per_s}/s for {sc.duration_s} s, spikes "
                  + ", ".join(f"{s.factor:g}x {s.duration_s:g} s at +{s.at_s:g} s"
                              for s in opts.spikes)
                  + f"; {len(plan)} faults planned (seed {sc.seed})")
        sender = threading.Thread(target=send, name="soak-traffic", daemon=True)
        self.t0 = time.time()
        sender.start()
        for p in plan:
            res = FaultResult(p.kind, p.at_s)
            self.results.append(res)
            wait = self.t0 + p.at_s - time.time()
            if wait > 0:
                sender.join(wait)
            if not sender.is_alive():
                res.outcome = "not injected: the traffic generator had stopped"
                continue
            self._say(f"{p.kind} ...")
            try:
                self.inject(res)
            except Exception as exc:  # noqa: BLE001 - a fault that could not be injected
                res.outcome = f"failed: {str(exc)[:300]}"
            self._say(f"{p.kind}: {res.outcome}"
                      + (f" in {res.recovery_s} s" if res.recovery_s is not None else "")
                      + (f"; {res.detail}" if res.detail else ""))
        # The traffic runs for duration_s, and on for cooldown_s after the last fault's
        # recovery when the faults took longer than planned.
        stop_at = max(self.t0 + sc.duration_s, time.time() + sc.cooldown_s)
        sender.join(max(0.0, stop_at - time.time()))
        stop.set()
        sender.join()
        self.watch.close()
        if "error" in sent:
            raise SoakError(f"the traffic generator failed: {sent['error']}")
        self._say(f"traffic done: {sent['report'].sent:,} records sent")
        return self.verify(opts, sent["report"])

    def verify(self, opts, report) -> dict:
        from jobs.batch import reconcile

        cfg = self.cfg
        w, ooo = cfg.event_time.window_ms, cfg.event_time.out_of_orderness_ms
        last_ms = opts.start_ms + int(report.last_schedule_s * 1000)
        start = (opts.start_ms - opts.late_by_ms) // w * w
        end = (last_ms - ooo) // w * w - w
        outputs = [cfg.topics.aggregates, cfg.topics.late, cfg.topics.dlq, cfg.topics.alerts]
        self._say("waiting for the last windows to be committed and archived ...")
        committed = self._settle(outputs)
        raw = raw_log_check(cfg, committed)
        dups = output_duplicates(cfg, committed)
        self._say(f"reconciling [{start}, {end}) from the raw log (Spark) ...")
        spark = reconcile.spark_session(None)
        try:
            results = reconcile.run(cfg, start, end, spark)
        finally:
            spark.stop()
        s = results["summary"]
        alerts_missing = s["alerts"].get("MISSING_IN_STREAM", 0)
        aggs_missing = s["aggregates"].get("MISSING_IN_STREAM", 0)
        distinct_alerts = len({json.loads(r.value)["alert_id"]
                               for r in committed[cfg.topics.alerts]})
        summary = {
            "started": self.started, "seed": self.sc.seed,
            "duration_s": round(report.last_schedule_s),
            "rate_per_s": self.sc.rate_per_s,
            "spikes": [asdict(x) for x in opts.spikes],
            "faults": [asdict(r) for r in self.results],
            "records_in": {cfg.topics.transactions: raw[cfg.topics.transactions]["expected"],
                           cfg.topics.accounts: raw[cfg.topics.accounts]["expected"]},
            "generated": report.sent,
            "records_out": {cfg.topics.aggregates: len(committed[cfg.topics.aggregates]),
                            cfg.topics.late: len(committed[cfg.topics.late]),
                            cfg.topics.dlq: len(committed[cfg.topics.dlq]),
                            f"{cfg.topics.alerts} (distinct alert_id)": distinct_alerts},
            "raw_log": raw,
            "duplicated_in_outputs": dups,
            "reconciliation": {"interval": [start, end], "aggregates": s["aggregates"],
                               "alerts": s["alerts"], "unexplained": s["unexplained"],
                               "accounting_holds": s["accounting"]["holds"],
                               "report": str(results["report"])},
            "lost": (sum(r["lost"] for r in raw.values()) + aggs_missing + alerts_missing),
            "duplicated": (sum(r["duplicated"] for r in raw.values()) + sum(dups.values())),
        }
        summary["ok"] = (summary["lost"] == 0 and summary["duplicated"] == 0
                         and s["unexplained"] == 0 and s["accounting"]["holds"]
                         and all(r.outcome == "recovered" or r.outcome.startswith(
                             ("skipped", "not injected")) for r in self.results))
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        table = format_table(summary)
        (self.out_dir / "table.md").write_text(table + "\n")
        return summary

    def _settle(self, outputs: list[str]) -> dict[str, list]:
        """Until both jobs have read all their input, their outputs stopped growing and the
        archiver holds all of them; returns the committed records of each output topic."""
        from payline import archiver, ops, stack, topics

        cfg = self.cfg
        quiet_s = 2 * cfg.flink.checkpoint_interval_ms / 1000 + 5
        deadline = time.monotonic() + self.sc.settle_timeout_s
        # 1. both jobs have read their whole input (what a spike or a fault left behind)
        while True:
            lags = [ops.consumer_lag(cfg, *ops._group_and_topics(cfg, ops.JOBS[job][1]))
                    for job in JOBS]
            behind = sum(v or 0 for lag in lags for v in lag.values())
            if behind == 0 and all(v is not None for lag in lags for v in lag.values()):
                break
            if time.monotonic() > deadline:
                raise SoakError(f"the jobs are still {behind:,} records behind their input "
                                f"after soak.settle_timeout_s ({self.sc.settle_timeout_s} s)")
            time.sleep(5)
        self._say("both jobs have read their whole input")
        # 2. their outputs have stopped growing (the last checkpoints committed)
        last = None
        while True:
            ends = end_offsets(cfg, outputs)
            if ends == last:
                break
            if time.monotonic() > deadline:
                raise SoakError(f"the outputs still grow after soak.settle_timeout_s "
                                f"({self.sc.settle_timeout_s} s)")
            last = ends
            time.sleep(quiet_s)
        committed = {t: topics.read_topic(cfg, t) for t in outputs}
        self._say("their outputs have stopped growing")
        # 3. the archiver holds them
        stalled_after_s = 6 * cfg.archiver.flush_interval_ms / 1000 + 30
        while not all(archiver.read_lake(cfg, t).num_rows >= len(committed[t])
                      for t in outputs):
            if not stack.archiver_pids(cfg):
                raise SoakError(f"the archiver is not running; its log: "
                                f"{stack.archiver_paths(cfg)[1]}")
            idle_s = time.time() - self._lake_newest()
            if idle_s > stalled_after_s:  # alive, records missing, nothing written
                raise SoakError(f"the archiver runs but has written nothing for {idle_s:.0f} s "
                                f"while records are missing from the lake; its log: "
                                f"{stack.archiver_paths(cfg)[1]}")
            if time.monotonic() > deadline:
                raise SoakError(f"the archiver has not caught up after soak.settle_timeout_s "
                                f"({self.sc.settle_timeout_s} s)")
            time.sleep(2)
        self._say("the archiver holds them")
        return committed


def latest_checkpoint(cfg: Config, job_id: str) -> str | None:
    """The newest complete retained checkpoint of ``job_id`` (its _metadata written)."""
    root = cfg.paths.checkpoints_dir / "checkpoints" / job_id
    done = [d for d in root.glob("chk-*") if (d / "_metadata").is_file()]
    if not done:
        return None
    return str(max(done, key=lambda d: int(d.name.removeprefix("chk-"))))


def end_offsets(cfg: Config, topic_names: list[str]) -> dict:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap, client_id="payline-soak")
    try:
        parts = [TopicPartition(t, p) for t in topic_names
                 for p in sorted(consumer.partitions_for_topic(t) or ())]
        return {f"{tp.topic}/{tp.partition}": o for tp, o in consumer.end_offsets(parts).items()}
    finally:
        consumer.close()


def raw_log_check(cfg: Config, committed: dict[str, list]) -> dict[str, dict]:
    """Per topic: the records a read_committed reader sees in Kafka against the raw log's rows.
    The input topics are written without transactions, so every offset from the beginning to
    the end is a record; the output topics' committed records are read one by one."""
    from kafka import KafkaConsumer, TopicPartition

    from payline import archiver

    out = {}
    consumer = KafkaConsumer(bootstrap_servers=cfg.kafka.bootstrap, client_id="payline-soak")
    try:
        for topic in (cfg.topics.transactions, cfg.topics.accounts):
            parts = [TopicPartition(topic, p)
                     for p in sorted(consumer.partitions_for_topic(topic) or ())]
            first, ends = consumer.beginning_offsets(parts), consumer.end_offsets(parts)
            expected = {(tp.partition, o) for tp in parts for o in range(first[tp], ends[tp])}
            out[topic] = _compare(archiver.read_lake(cfg, topic), expected)
    finally:
        consumer.close()
    for topic, records in committed.items():
        out[topic] = _compare(archiver.read_lake(cfg, topic),
                              {(r.partition, r.offset) for r in records})
    return out


def _compare(lake, expected: set) -> dict:
    keys = list(zip(lake.column("partition").to_pylist(), lake.column("offset").to_pylist(),
                    strict=True))
    unique = set(keys)
    return {"expected": len(expected), "rows": len(keys), "lost": len(expected - unique),
            "extra": len(unique - expected), "duplicated": len(keys) - len(unique)}


def output_duplicates(cfg: Config, committed: dict[str, list]) -> dict[str, int]:
    """Records an exactly-once output holds more than once, by the contract's identities."""
    def dup(records, key) -> int:
        seen = Counter(key(json.loads(r.value)) for r in records)
        return sum(n - 1 for n in seen.values())

    return {
        cfg.topics.aggregates: dup(committed[cfg.topics.aggregates], lambda v: (
            v["account_id"], v["currency"], v["window_start_ms"])),
        cfg.topics.dlq: dup(committed[cfg.topics.dlq], lambda v: (
            v["source_topic"], v["source_partition"], v["source_offset"])),
        cfg.topics.late: dup(committed[cfg.topics.late], lambda v: v["txn_id"]),
    }


def format_table(s: dict) -> str:
    lines = [f"chaos soak {s['started']}: {s['duration_s']} s at {s['rate_per_s']}/s "
             f"(seed {s['seed']}), spikes "
             + ", ".join(f"{x['factor']:g}x {x['duration_s']:g} s at +{x['at_s']:g} s"
                         for x in s["spikes"]), "",
             "| # | fault | at | recovery | outcome | detail |", "|---|---|---|---|---|---|"]
    for i, f in enumerate(s["faults"], 1):
        at = f"+{f['injected_at_s']:.0f} s" if f["injected_at_s"] is not None else \
            f"(+{f['planned_at_s']:.0f} s)"
        rec = f"{f['recovery_s']:.1f} s" if f["recovery_s"] is not None else "-"
        lines.append(f"| {i} | {f['kind']} | {at} | {rec} | {f['outcome']} | {f['detail']} |")
    lines += ["", "| fault kind | injected | recovered | recovery max |", "|---|---|---|---|"]
    kinds = sorted({f["kind"] for f in s["faults"]}, key=KINDS.index)
    for k in kinds:
        fs = [f for f in s["faults"] if f["kind"] == k and f["injected_at_s"] is not None
              and not f["outcome"].startswith("skipped")]
        rec = [f["recovery_s"] for f in fs if f["recovery_s"] is not None]
        lines.append(f"| {k} | {len(fs)} | {len(rec)} | "
                     f"{max(rec):.1f} s |" if rec else f"| {k} | {len(fs)} | 0 | - |")
    r = s["reconciliation"]
    lines += ["",
              "records in: " + ", ".join(f"{t} {n:,}" for t, n in s["records_in"].items()),
              "records out (committed): " + ", ".join(f"{t} {n:,}" for t, n in
                                                      s["records_out"].items()),
              "raw log: " + ", ".join(
                  f"{t} {v['rows']:,} rows / {v['expected']:,} records (lost {v['lost']}, "
                  f"twice {v['duplicated']}, extra {v['extra']})"
                  for t, v in s["raw_log"].items()),
              "exactly-once outputs held twice: " + ", ".join(
                  f"{t} {n}" for t, n in s["duplicated_in_outputs"].items()),
              f"reconciliation [{r['interval'][0]}, {r['interval'][1]}): aggregates "
              f"{r['aggregates']}, alerts {r['alerts']}, unexplained {r['unexplained']}, "
              f"accounting {'holds' if r['accounting_holds'] else 'BROKEN'}",
              f"LOST {s['lost']}, DUPLICATED {s['duplicated']}: "
              + ("PASS" if s["ok"] else "FAIL")]
    return "\n".join(lines)


def _say_now(text: str) -> None:
    print(text, flush=True)  # line by line, for whoever follows a long soak in a log file


def run(cfg: Config, cli_args: list[str], log=_say_now) -> dict:
    soak = Soak(cfg, cli_args, log)
    summary = soak.run()
    log("")
    log(format_table(summary))
    log(f"\nsoak: summary {soak.out_dir / 'summary.json'}, table {soak.out_dir / 'table.md'}")
    return summary
