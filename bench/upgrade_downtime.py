"""Benchmark: the output downtime of `payline upgrade` of the transactions job under traffic
(issue 6's target: <= 15 s at 5 000 events/s).

On fresh topics of the local stack: releases two versions of the transactions job, deploys the
first, sends paced traffic (``--rate`` events/s for ``--seconds``) with the generator, and runs
``payline upgrade`` to the second version at ``--upgrade-at`` seconds. Two consumers watch the
job's outputs (``payments.dlq`` and ``payments.account-aggregates``) the whole time and note the
wall-clock time each record shows up:

* ``read_uncommitted``: when the job wrote it (processing downtime);
* ``read_committed``: when a reader of the exactly-once outputs can see it (the job commits at
  each checkpoint, so in steady state it arrives in bursts one checkpoint interval apart).

Downtime is the largest gap between two consecutive arrivals around the upgrade; the same
measure away from the upgrade is printed as the steady-state reference.

    .venv/bin/python bench/upgrade_downtime.py [--rate 5000] [--seconds 150] [--upgrade-at 60]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from payline import kafka_admin  # noqa: E402
from payline.flink.rest import FlinkRest  # noqa: E402
from payline.generator.options import generator_options  # noqa: E402
from payline.generator.send import send  # noqa: E402
from payline.local import stack  # noqa: E402
from payline.release import lifecycle, releases  # noqa: E402
from runtime import config as config_mod  # noqa: E402


def watch(cfg, names: list[str], isolation: str, arrivals: list[float], stop: threading.Event):
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(*names, bootstrap_servers=cfg.kafka.bootstrap,
                             isolation_level=isolation, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    try:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=200).values():
                now = time.time()
                arrivals.extend([now] * len(records))
    finally:
        consumer.close()


def largest_gap(times: list[float], lo: float, hi: float) -> float:
    inside = sorted(t for t in times if lo <= t <= hi)
    return max((b - a for a, b in zip(inside, inside[1:], strict=False)), default=float("nan"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=5000.0)
    ap.add_argument("--seconds", type=float, default=150.0)
    ap.add_argument("--upgrade-at", type=float, default=60.0)
    ap.add_argument("--conf", default=None)
    args = ap.parse_args(argv)
    tag = time.strftime("%Y%m%d%H%M%S")
    names = {k: f"bench.upgrade-{tag}.{k}" for k in ("transactions", "accounts", "aggregates",
                                                     "late", "dlq")}
    sets = [f"topics.{k}={v}" for k, v in names.items()]
    cfg = config_mod.load(args.conf, sets)
    stack.up(cfg)
    kafka_admin.create_topics(cfg, log=lambda _: None)
    job_args = tuple(x for s in sets for x in ("--set", s)) + (
        ("--conf", args.conf) if args.conf else ())
    for v in ("a", "b"):
        releases.release(cfg, "transactions", f"bench-{tag}-{v}")
    if lifecycle.running_job(cfg, "transactions"):
        print("bench: a transactions job already runs; stop it first (payline down)")
        return 1
    lifecycle.deploy(cfg, "transactions", f"bench-{tag}-a", job_args=job_args)

    stop = threading.Event()
    seen = {"read_uncommitted": [], "read_committed": []}
    watchers = [threading.Thread(target=watch, args=(cfg, [names["dlq"], names["aggregates"]],
                                                     iso, seen[iso], stop), daemon=True)
                for iso in seen]
    for w in watchers:
        w.start()
    opts = generator_options(cfg, {"duration": args.seconds, "rate": args.rate, "seed": 11})
    traffic = threading.Thread(target=send, args=(cfg.kafka.bootstrap, opts),
                               daemon=True)
    t_start = time.time()
    traffic.start()
    time.sleep(args.upgrade_at)
    t_up = time.time()
    up = lifecycle.upgrade(cfg, "transactions", f"bench-{tag}-b")
    t_up_done = time.time()
    traffic.join()
    time.sleep(3 * cfg.flink.checkpoint_interval_ms / 1000 + 5)
    stop.set()
    for w in watchers:
        w.join(10)
    job = lifecycle.running_job(cfg, "transactions")
    if job:
        FlinkRest.of(cfg).cancel(job)

    print(f"machine: {platform.node()}, {os.cpu_count()} cores; rate {args.rate:.0f}/s for "
          f"{args.seconds:.0f} s, checkpoint interval {cfg.flink.checkpoint_interval_ms} ms")
    print(f"payline upgrade took {t_up_done - t_up:.1f} s (client prepared ahead: "
          f"{up.get('prepared_client')}): stop-with-savepoint {up['stop_with_savepoint_s']} s, "
          f"then submit {up['submit_s']} s, until every task runs {up['until_running_s']} s "
          f"(from the stop's start until running: {up.get('stopped_until_running_s')} s)")
    for iso, times in seen.items():
        steady = largest_gap(times, t_start + 20, t_up - 2)
        around = largest_gap(times, t_up - 2, t_up_done + 60)
        print(f"{iso:<17} {len(times):>8,} records; largest gap: steady state {steady:5.1f} s,"
              f" across the upgrade {around:5.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
