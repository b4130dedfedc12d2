"""`payline demo`: the main job end to end on the embedded default stack: the stack and the
archiver up, traffic, both streaming jobs, their committed outputs, the raw log, and a
reconciliation of the closed windows."""

from __future__ import annotations

import json
import time
from collections import Counter

from jobs.archiver import read_lake
from jobs.batch import reconcile
from payline import kafka_admin, status
from payline.cli.args import command, passed_on, positive_int
from payline.cli.job_cmds import submit
from payline.flink.rest import FlinkRest
from payline.generator.options import generator_options
from payline.generator.plan import Options
from payline.generator.send import send
from payline.local import archiver_proc, stack
from runtime import kafka_clients
from runtime.registry import STREAMING_JOBS
from runtime.settings import Config
from runtime.times import interval

DEMO_EVENT_TIME_S = 360


def register(sub) -> None:
    d = command(sub, "demo", "run the main job end to end on the local stack (~3 min)",
                "Start the stack and the archiver, send traffic (with duplicates, late and bad "
                "records),\nrun both streaming jobs, show their committed outputs and the "
                "raw log, and reconcile the\nclosed windows. Exit 1 when a difference is "
                "unexplained. The stack stays up.",
                ["payline demo", "payline demo --count 50000 --seed 7"])
    d.add_argument("--count", type=positive_int, default=20000,
                   help="transactions to generate (default 20000)")
    d.add_argument("--seed", type=positive_int, default=None,
                   help="the generator's seed (default generator.seed)")
    d.set_defaults(run=cmd_demo)


def cmd_demo(cfg: Config, args) -> int:
    stack.up(cfg)
    archiver_proc.archiver_up(cfg, passed_on(args))
    # six minutes of event time, so that several windows close and can be reconciled
    opts = generator_options(cfg, {"count": args.count, "seed": args.seed,
                                   "rate": max(1.0, args.count / DEMO_EVENT_TIME_S)})
    print(f"generating {opts.count} transactions (seed {opts.seed}, "
          f"{DEMO_EVENT_TIME_S} s of event time) to {cfg.topics.transactions} at "
          f"{kafka_clients.bootstrap(cfg)} ...")
    # Traffic first, jobs second: a job that has sat on empty partitions for the idle timeout
    # lets the first partition it reads after a burst set the watermark, and much of the rest
    # of the burst arrives late (Flink's idleness at work). The jobs then read a backlog.
    report = send(kafka_clients.librdkafka_config(cfg, "generator"), opts, max_speed=True)
    rest = FlinkRest.of(cfg)
    for key, job in STREAMING_JOBS.items():
        job_id = rest.live_job(job.name)
        if job_id:
            print(f"{key} job already running ({job_id})")
            continue
        submit(cfg, args, key)
    print(report.summary())
    print()
    # Windows close as the watermark passes them; exactly-once output becomes visible when the
    # checkpoint that covers it completes.
    wait_s = 3 * cfg.flink.checkpoint_interval_ms / 1000 + 10
    print(f"waiting {wait_s:.0f} s for the job's checkpoints to commit its output ...")
    time.sleep(wait_s)
    print("committed output (read_committed):")
    for key in ("aggregates", "dlq", "late"):
        name = getattr(cfg.topics, key)
        print(f"  {name:<30} {len(kafka_admin.read_topic(cfg, name)):>8} records")
    print("  (windows still open wait for later traffic to move the watermark past them)")
    alerts = [json.loads(r.value) for r in kafka_admin.read_topic(cfg, cfg.topics.alerts)]
    by_rule = Counter(a["rule"] for a in {a["alert_id"]: a for a in alerts}.values())
    print(f"alerts (at-least-once; distinct by alert_id) on {cfg.topics.alerts}: "
          + (", ".join(f"{rule} {n}" for rule, n in sorted(by_rule.items())) or "none"))
    print()
    by_topic = Counter(read_lake(cfg).column("topic").to_pylist())
    print(f"raw log (Parquet, exactly once per topic/partition/offset): {cfg.paths.raw_dir}")
    for name, n in sorted(by_topic.items()):
        print(f"  {name:<30} {n:>8} rows")
    print()
    print(status.format_status(status.status(cfg)))
    print()
    code = demo_reconcile(cfg, args, opts)
    print()
    print("demo: the stack and the jobs stay up; `payline status` shows them, "
          "`payline down` stops everything.")
    return code


def demo_reconcile(cfg: Config, args, opts: Options) -> int:
    """Reconcile the demo's closed windows, from the window of its late records up to the
    last window the watermark has passed, once the archiver holds the committed outputs."""
    w = cfg.event_time.window_ms
    last_ms = opts.start_ms + int(opts.count / opts.rate_per_s * 1000)
    start = (opts.start_ms - opts.late_by_ms) // w * w
    end = (last_ms - cfg.event_time.out_of_orderness_ms) // w * w - w
    wanted = {t: len(kafka_admin.read_topic(cfg, t)) for t in (
        cfg.topics.aggregates, cfg.topics.late, cfg.topics.dlq)}
    deadline = time.monotonic() + 120
    while any(read_lake(cfg, t).num_rows < n for t, n in wanted.items()):
        if time.monotonic() > deadline:
            print("demo: the archiver has not caught up with the outputs; reconciling anyway")
            break
        time.sleep(2)
    print(f"reconciling windows {interval(start, end)} from the raw log (Spark) ...")
    return reconcile.main(["--start", str(start), "--end", str(end), *passed_on(args)])
