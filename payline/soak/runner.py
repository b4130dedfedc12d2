"""The soak run: the stack and both jobs (as releases) up, traffic in a thread, the planned
faults injected one at a time (:mod:`payline.soak.faults`), each waited for until it has
recovered, then everything settled, checked (:mod:`payline.soak.checks`) and reconciled.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from jobs.archiver import read_lake
from jobs.batch import reconcile
from payline import kafka_admin
from payline.errors import FlinkError, SoakError
from payline.flink.rest import FlinkRest
from payline.generator.options import generator_options
from payline.generator.send import send as send_plan
from payline.local import archiver_proc, cluster, stack
from payline.release import lifecycle, releases
from payline.soak.checks import format_table, output_duplicates, raw_log_check
from payline.soak.faults import FAULTS
from payline.soak.plan import JOBS, UPGRADED_JOB, FaultResult, check_kinds, plan_faults, plan_spikes
from payline.soak.watch import OutputWatch
from runtime import kafka_clients
from runtime.registry import STREAMING_JOBS
from runtime.settings import Config


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
        if kafka_clients.active(self.cfg):
            # its watcher, traffic and checks are plain clients of the broker
            raise SoakError("the soak runs on a plaintext stack: security.enabled is on (or "
                            f"{self.cfg.paths.run_dir} was started with `up --secure`); run it "
                            "with a --conf of its own run dir and ports")
        stack.up(self.cfg, self.log)
        archiver_proc.archiver_up(self.cfg, self.cli_args, self.log)
        for job in JOBS:
            if lifecycle.running_job(self.cfg, job):
                raise SoakError(f"the {job} job is already running on {self.cfg.flink.rest_url}; "
                                f"the soak deploys its own releases: stop it first (or run the "
                                f"soak on its own stack with --conf)")
        for job in JOBS:
            names = [f"soak-{self.started}-a"] + (
                [f"soak-{self.started}-b"] if job == UPGRADED_JOB else [])
            for v in names:
                releases.release(self.cfg, job, v)
            self.versions[job] = names

        def deploy(job):
            rec = lifecycle.deploy(self.cfg, job, self.versions[job][0],
                             job_args=tuple(self.cli_args))
            self._say(f"{job} {self.versions[job][0]} running (job {rec['job_id']}, "
                      f"{rec['until_running_s']} s)")

        # both at once: each `flink run` spends most of its time in the client
        with ThreadPoolExecutor(len(JOBS)) as pool:
            list(pool.map(deploy, JOBS))
        # standbys start after the deploy, so the jobs' tasks are on the first TaskManager
        n = self.sc.standby_taskmanagers
        if n:
            have = len(cluster.taskmanagers(self.cfg))
            for _ in range(n):
                cluster.taskmanager_start(self.cfg, log=lambda _: None)
            cluster.wait_taskmanagers(self.cfg, have + n)
            self._say(f"{n} standby TaskManager{'s' if n > 1 else ''} registered")

    def traffic(self):
        """The generator's options: the [generator] mix at the soak's rate, with spikes."""
        sc = self.sc
        # the schedule outlasts any run: the soak stops the traffic itself
        opts = generator_options(self.cfg, {
            "duration": float(4 * sc.duration_s + sc.recovery_timeout_s * sc.faults),
            "rate": float(sc.rate_per_s), "seed": sc.seed})
        return dataclasses.replace(opts, spikes=plan_spikes(
            sc.seed, sc.spikes, sc.spike_factor, sc.spike_s, sc.duration_s))

    def _running(self) -> bool:
        for job in JOBS:
            jid = lifecycle.running_job(self.cfg, job)
            if not jid or not FlinkRest.of(self.cfg).all_running(jid):
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

    def recovered(self, kind: str, since: float, after: float) -> float | None:
        """Seconds from ``since`` (the fault) until the fault's effect is over, None while it
        is not: output written after ``after`` (when the injection was done: the new process
        or job started, so what a job that was being stopped still committed does not count).
        """
        if not archiver_proc.archiver_pids(self.cfg):  # it died (not the one this fault killed)
            raise SoakError(f"the archiver is not running after {kind}; its log: "
                            f"{archiver_proc.archiver_paths(self.cfg)[1]}")
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
        except FlinkError:  # the REST API is down while the JobManager is
            return None
        return max(txn, alerts) - since

    def wait_recovered(self, res: FaultResult, since: float) -> None:
        after = time.time()
        deadline = time.monotonic() + self.sc.recovery_timeout_s
        while time.monotonic() < deadline:
            took = self.recovered(res.kind, since, after)
            if took is not None:
                res.recovery_s = round(took, 1)
                res.outcome = "recovered"
                return
            time.sleep(0.5)
        res.outcome = "not recovered"
        res.detail += f" (nothing after {self.sc.recovery_timeout_s} s)"

    def inject(self, res: FaultResult) -> None:
        since = time.time()
        res.injected_at_s = round(since - self.t0, 1)
        since = FAULTS[res.kind](self, res, since)
        if since is not None:
            self.wait_recovered(res, since)

    def failed_checkpoints(self) -> int:
        """Failed checkpoints of the running jobs so far."""
        n = 0
        for job in JOBS:
            jid = lifecycle.running_job(self.cfg, job)
            if jid:
                n += FlinkRest.of(self.cfg).get(f"/jobs/{jid}/checkpoints").get(
                    "counts", {}).get("failed", 0)
        return n

    # the run --------------------------------------------------------------------------------

    def run(self) -> dict:
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
                    sent["report"] = send_plan(
                        kafka_clients.librdkafka_config(self.cfg, "generator"), opts,
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
        cfg = self.cfg
        quiet_s = 2 * cfg.flink.checkpoint_interval_ms / 1000 + 5
        deadline = time.monotonic() + self.sc.settle_timeout_s
        # 1. both jobs have read their whole input (what a spike or a fault left behind)
        while True:
            lags = [kafka_admin.consumer_lag(cfg, STREAMING_JOBS[job].group_id(cfg),
                                             STREAMING_JOBS[job].source_topics(cfg))
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
            ends = kafka_admin.end_offsets(cfg, outputs)
            if ends == last:
                break
            if time.monotonic() > deadline:
                raise SoakError(f"the outputs still grow after soak.settle_timeout_s "
                                f"({self.sc.settle_timeout_s} s)")
            last = ends
            time.sleep(quiet_s)
        committed = {t: kafka_admin.read_topic(cfg, t) for t in outputs}
        self._say("their outputs have stopped growing")
        # 3. the archiver holds them
        stalled_after_s = 6 * cfg.archiver.flush_interval_ms / 1000 + 30
        while not all(read_lake(cfg, t).num_rows >= len(committed[t]) for t in outputs):
            if not archiver_proc.archiver_pids(cfg):
                raise SoakError(f"the archiver is not running; its log: "
                                f"{archiver_proc.archiver_paths(cfg)[1]}")
            idle_s = time.time() - self._lake_newest()
            if idle_s > stalled_after_s:  # alive, records missing, nothing written
                raise SoakError(f"the archiver runs but has written nothing for {idle_s:.0f} s "
                                f"while records are missing from the lake; its log: "
                                f"{archiver_proc.archiver_paths(cfg)[1]}")
            if time.monotonic() > deadline:
                raise SoakError(f"the archiver has not caught up after soak.settle_timeout_s "
                                f"({self.sc.settle_timeout_s} s)")
            time.sleep(2)
        self._say("the archiver holds them")
        return committed


def _say_now(text: str) -> None:
    print(text, flush=True)  # line by line, for whoever follows a long soak in a log file


def run(cfg: Config, cli_args: list[str], log=_say_now) -> dict:
    soak = Soak(cfg, cli_args, log)
    summary = soak.run()
    log("")
    log(format_table(summary))
    log(f"\nsoak: summary {soak.out_dir / 'summary.json'}, table {soak.out_dir / 'table.md'}")
    return summary
