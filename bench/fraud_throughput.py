"""Benchmark: the fraud job's throughput from a backlog, and what its Python settings change.

Pre-loads N events (default 2 000 000 over 100 000 accounts at 5 000 events/s of event time, so
an account sees about 3 transactions a minute; 1 % duplicates, 0.5 % bad records, 0.1 % large
amounts) and the accounts' profiles into fresh topics of the local stack, then runs
the fraud job bounded from the whole backlog, once per variant:

* ``thread``: the default (``python.execution-mode: thread``, timers on a 200 ms grid);
* ``thread-coalesce-1s``, ``thread-coalesce-2s``: timers on a 1 s / 2 s grid, so that an
  account's buffered transactions meet the rules in fewer, larger batches of state access;
* ``process``: Python in a separate process (Beam's gRPC harness), on a smaller backlog
  (``--process-events``, default 200 000) because it is much slower.

For each it prints the sustained rate (source records/s between 10 % and 90 % of its backlog,
from Flink's REST API) and the time from job start until FINISHED (every alert sent).

    .venv/bin/python bench/fraud_throughput.py [--events N] [--process-events M] [--conf FILE]
        [--only thread,process,...]

Starts the stack if it is not running; leaves it running (``payline down``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.transactions_throughput import run_and_watch  # noqa: E402
from payline import kafka_admin  # noqa: E402
from payline.generator import plan as generator  # noqa: E402
from payline.generator.send import send  # noqa: E402
from payline.local import broker, cluster, java_build  # noqa: E402
from runtime import config as config_mod  # noqa: E402

VARIANTS = {
    "thread": [],
    "thread-coalesce-1s": ["--set=fraud.timer_coalesce_ms=1000"],
    "thread-coalesce-2s": ["--set=fraud.timer_coalesce_ms=2000"],
    "process": ["--set=flink.python_execution_mode=process"],
}


def create_topics(cfg, names, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap)
    admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    admin.close()


def load(cfg, run_id: str, label: str, events: int, partitions: int, accounts: int,
         rate: float) -> tuple:
    names = {k: f"bench.{run_id}.{label}.{k}" for k in ("transactions", "accounts")}
    create_topics(cfg, names.values(), partitions)
    bad = 0.005
    opts = generator.Options(
        count=events, rate_per_s=rate, accounts=accounts, seed=7,
        duplicate_fraction=0.01, conflicting_duplicate_fraction=0.0, late_fraction=0.0,
        malformed_fraction=bad / 3, schema_violation_fraction=bad / 3,
        invalid_value_fraction=bad / 3, txn_topic=names["transactions"],
        accounts_topic=names["accounts"])
    print(f"loading {events:,} events into {names['transactions']} ...", flush=True)
    report = send(cfg.kafka.bootstrap, opts, max_speed=True)
    return names, report.sent - report.counts.get("profile", 0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fraud_throughput", description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=2_000_000)
    p.add_argument("--process-events", type=int, default=200_000)
    p.add_argument("--accounts", type=int, default=100_000)
    p.add_argument("--rate", type=float, default=5000,
                   help="event-time schedule, events per second (default 5000)")
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--only", default=",".join(VARIANTS),
                   help=f"comma-separated variants of {', '.join(VARIANTS)}")
    p.add_argument("--conf")
    args = p.parse_args(argv)
    chosen = [v.strip() for v in args.only.split(",") if v.strip()]
    for v in chosen:
        if v not in VARIANTS:
            p.error(f"--only: unknown variant {v!r} (choose from {', '.join(VARIANTS)})")
    if min(args.events, args.process_events) < 1000:
        p.error("--events and --process-events: at least 1000")
    cfg = config_mod.load(args.conf, [])
    java_build.ensure_jars(cfg)  # the Maven jars and the jobs' own Java functions
    broker.kafka_up(cfg)
    cluster.flink_up(cfg)
    run_id = time.strftime("%Y%m%d%H%M%S")
    conf_args = ["--conf", args.conf] if args.conf else []

    backlogs = {}
    results = []
    for variant in chosen:
        size = args.process_events if variant == "process" else args.events
        if size not in backlogs:
            backlogs[size] = load(cfg, run_id, f"n{size}", size, args.partitions,
                                  args.accounts, args.rate)
        names, n = backlogs[size]
        names = {**names, **{k: f"bench.{run_id}.{variant}.{k}" for k in ("alerts", "dlq")}}
        create_topics(cfg, [names["alerts"], names["dlq"]], args.partitions)
        overrides = [f"--set=topics.{k}={v}" for k, v in names.items()]
        print(f"running {variant} on {n:,} ...", flush=True)
        r = run_and_watch(cfg, ROOT / "jobs/streaming/fraud.py",
                          [*conf_args, *overrides, *VARIANTS[variant], "--bounded",
                           "--starting-offsets", "earliest",
                           "--group-id", f"bench-{run_id}-{variant}"], n, variant)
        r["events"] = n
        alerts = {json.loads(m.value)["alert_id"]
                  for m in kafka_admin.read_topic(cfg, names["alerts"], timeout_s=300)}
        r["alerts"] = len(alerts)
        results.append(r)

    print()
    print(f"machine: {platform.node()}, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"{'variant':<22}{'events':>11}{'sustained events/s':>20}{'until finished':>17}"
          f"{'events/s overall':>18}{'alerts':>9}")
    for r in results:
        print(f"{r['job']:<22}{r['events']:>11,}{r['sustained_per_s']:>20,.0f}"
              f"{r['duration_s']:>15.1f} s{r['overall_per_s']:>18,.0f}{r['alerts']:>9,}")
    base = next((r for r in results if r["job"] == "thread"), None)
    for r in results:
        if base and r is not base:
            print(f"ratio {r['job']} / thread (sustained): "
                  f"{r['sustained_per_s'] / base['sustained_per_s']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
