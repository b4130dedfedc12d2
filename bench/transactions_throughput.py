"""Benchmark: the transactions job against a JVM-only Flink SQL baseline, on one backlog.

Pre-loads N events (default 2 000 000; contract mix with 1 % duplicates and 0.5 % bad records)
into a fresh topic of the local stack, then runs, one after the other and each from the whole
backlog with exactly-once sinks:

1. the transactions job (``jobs/streaming/transactions.py --bounded``);
2. the baseline (``bench/baseline_job.py``): same source, parse, filter and windowed aggregate
   in plain Flink SQL, no Python per record.

For each it prints the sustained rate (source records/s between 10 % and 90 % of the backlog,
from Flink's REST API) and the time from job start until it finished, which for a bounded job
is when the final checkpoint has committed every aggregate. Then the ratio of the two rates.

    .venv/bin/python bench/transactions_throughput.py [--events N] [--conf FILE]

Starts the stack with ``payline up`` if it is not running; leaves it running (``payline down``).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from payline import kafka_admin  # noqa: E402
from payline.flink.rest import FlinkRest  # noqa: E402
from payline.flink.submit import flink_run, job_id_of  # noqa: E402
from payline.generator import plan as generator  # noqa: E402
from payline.generator.send import send  # noqa: E402
from payline.local import broker, cluster, java_build  # noqa: E402
from runtime import config as config_mod  # noqa: E402


def rest(cfg, path: str):
    return FlinkRest.of(cfg).get(path)


def source_records(cfg, job_id: str, vertex_id: str) -> float:
    """Records emitted by the Kafka source operator itself (not by its chain), all subtasks."""
    base = f"/jobs/{job_id}/vertices/{vertex_id}/subtasks/metrics"
    ids = [m["id"] for m in rest(cfg, base)
           if m["id"].startswith("Source") and m["id"].endswith(".numRecordsOut")]
    if not ids:
        return 0.0
    return sum(m.get("sum", 0) for m in rest(cfg, f"{base}?get={ids[0]}&agg=sum"))


def run_and_watch(cfg, python_file: Path, job_args: list[str], events: int, label: str) -> dict:
    """Submit detached, sample the source's read count each second until FINISHED."""
    job_id = job_id_of(flink_run(cfg, python_file, job_args, detached=True).stdout)
    samples = []  # (monotonic s, records read by the source)
    while True:
        job = rest(cfg, f"/jobs/{job_id}")
        if job["state"] in ("FAILED", "CANCELED"):
            raise SystemExit(f"{label}: job {job_id} ended {job['state']}")
        samples.append((time.monotonic(), source_records(cfg, job_id, job["vertices"][0]["id"])))
        if job["state"] == "FINISHED":
            break
        time.sleep(0.25)
    # the source's rate between 10 % and 90 % of the backlog: start-up and the final
    # checkpoint left out (NaN when the run was too short to sample)
    lo = next((s for s in samples if s[1] >= 0.1 * events), None)
    hi = next((s for s in samples if s[1] >= 0.9 * events), None)
    sustained = ((hi[1] - lo[1]) / (hi[0] - lo[0]) if lo and hi and hi[0] > lo[0]
                 else float("nan"))
    duration_s = job["duration"] / 1000
    return {"job": label, "job_id": job_id, "read": samples[-1][1],
            "sustained_per_s": sustained, "duration_s": duration_s,
            "overall_per_s": events / duration_s}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="transactions_throughput", description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=2_000_000)
    p.add_argument("--conf")
    p.add_argument("--rate", type=float, default=20_000,
                   help="event-time schedule, events per second (default 20000)")
    p.add_argument("--accounts", type=int, default=5000)
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--skip-baseline", action="store_true")
    args = p.parse_args(argv)
    if args.events < 1000:
        p.error("--events: at least 1000")
    cfg = config_mod.load(args.conf, [])
    java_build.ensure_jars(cfg)  # the Maven jars and the jobs' own Java functions
    broker.kafka_up(cfg)
    cluster.flink_up(cfg)

    run_id = time.strftime("%Y%m%d%H%M%S")
    names = {k: f"bench.{run_id}.{k}" for k in ("transactions", "accounts", "dlq", "late",
                                                 "aggregates", "baseline")}
    from kafka.admin import KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap)
    admin.create_topics([NewTopic(n, args.partitions, 1) for n in names.values()])
    admin.close()

    bad = 0.005
    opts = generator.Options(
        count=args.events, rate_per_s=args.rate, accounts=args.accounts, seed=7,
        duplicate_fraction=0.01, conflicting_duplicate_fraction=0.0,
        malformed_fraction=bad / 3, schema_violation_fraction=bad / 3,
        invalid_value_fraction=bad / 3, txn_topic=names["transactions"],
        accounts_topic=names["accounts"])
    print(f"loading {args.events:,} events into {names['transactions']} ...", flush=True)
    report = send(cfg.kafka.bootstrap, opts, max_speed=True)
    n = report.sent - report.counts.get("profile", 0)
    print(f"loaded {report.sent:,} records ({report.rate:,.0f}/s)", flush=True)

    overrides = [f"--set=topics.{k}={names[k]}" for k in ("transactions", "dlq", "late",
                                                           "aggregates")]
    conf_args = ["--conf", args.conf] if args.conf else []
    results = [run_and_watch(
        cfg, ROOT / "jobs/streaming/transactions.py",
        [*conf_args, *overrides, "--bounded", "--starting-offsets", "earliest",
         "--group-id", f"bench-{run_id}"], n, "transactions job")]
    if not args.skip_baseline:
        results.append(run_and_watch(
            cfg, ROOT / "bench/baseline_job.py",
            [*conf_args, "--source", names["transactions"], "--sink", names["baseline"],
             "--group-id", f"bench-baseline-{run_id}"], n, "JVM-only SQL baseline"))
    aggregates = len(kafka_admin.read_topic(cfg, names["aggregates"], committed_only=True,
                                       timeout_s=300))

    print()
    print(f"machine: {platform.node()}, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"backlog: {n:,} transactions on {args.partitions} partitions; "
          f"{aggregates:,} aggregates committed by the transactions job")
    checkpoint_conf = rest(cfg, f"/jobs/{results[0]['job_id']}/checkpoints/config")
    print(f"state backend of the transactions job: "
          f"{(checkpoint_conf or {}).get('state_backend', 'unknown')} "
          f"(flink.state_backend = {cfg.flink.state_backend}, "
          f"flink.rocksdb_compression = {cfg.flink.rocksdb_compression})")
    print(f"{'job':<24}{'sustained events/s':>20}{'until all committed':>22}"
          f"{'events/s overall':>18}")
    for r in results:
        print(f"{r['job']:<24}{r['sustained_per_s']:>20,.0f}{r['duration_s']:>20.1f} s"
              f"{r['overall_per_s']:>18,.0f}")
    if len(results) == 2:
        for key in ("sustained_per_s", "overall_per_s"):
            print(f"ratio job / baseline ({key.split('_')[0]}): "
                  f"{results[0][key] / results[1][key]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
