"""Benchmark: alert latency of the fraud job under steady traffic.

Runs the fraud job on fresh topics of the local stack and sends generated traffic at a steady
rate (default 5 000 events/s for 60 s, event time = wall clock, 1 % of transactions
``LARGE_AMOUNT``). A separate consumer process reads ``payments.alerts`` as they arrive.
Latency of an alert = time it was first read by the consumer - time the producer was asked to
send the transaction that completed it (``produce()`` call; the producer sends at once,
``linger.ms=0``, unless ``--linger-ms`` lets it batch). The first and last 10 s are left out
(warm-up; the watermark of the last records only moves with later traffic).

Prints p50 / p99 / max per rule and per severity: ``LARGE_AMOUNT`` fires on arrival; the
other rules wait for the watermark to pass the transaction, so their latency is bounded below
by the out-of-orderness (5 s) plus the timer grid (``fraud.timer_coalesce_ms``).

With ``--storm``, 2 000 extra accounts each send a burst of 12 transactions within one second
in the middle of the run: 2 000 medium (VELOCITY) alerts at once, to show whether high-severity
alerts wait behind them (their own sink path says they should not).

    .venv/bin/python bench/fraud_latency.py [--rate 5000] [--seconds 60] [--storm] [--conf FILE]
        [--linger-ms 0]

Starts the stack if needed; leaves it running; cancels its job at the end.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.transactions_throughput import rest  # noqa: E402
from payline.flink.rest import FlinkRest  # noqa: E402
from payline.flink.submit import flink_run, job_id_of  # noqa: E402
from payline.generator import plan as generator  # noqa: E402
from payline.generator.send import producer  # noqa: E402
from payline.local import broker, cluster, java_build  # noqa: E402
from runtime import config as config_mod  # noqa: E402

WARMUP_S = 10
TAIL_S = 10
PROFILES_S = 5  # planned for sending the accounts' profiles


def consume(bootstrap: str, topic: str, out_path: str, ready, stop) -> None:
    """Read alerts as they arrive; write (alert_id, rule, severity, last txn_id, read at)."""
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"latency-{time.time()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 5, "isolation.level": "read_committed"})
    c.subscribe([topic])
    seen = {}
    while not c.assignment():
        c.poll(0.1)
    ready.set()
    while not stop.is_set():
        msg = c.poll(0.05)
        if msg is None or msg.error():
            continue
        now = time.time()
        a = json.loads(msg.value())
        if a["alert_id"] not in seen:
            seen[a["alert_id"]] = (a["rule"], a["severity"], a["txn_ids"][-1], now,
                                   msg.timestamp()[1] / 1000)
    c.close()
    Path(out_path).write_text(json.dumps(seen))


def poll_checkpoints(cfg, job_id: str, out: dict, stop) -> None:
    """The job's completed checkpoints (REST history), every 2 s until ``stop``."""
    while not stop.is_set():
        try:
            for c in rest(cfg, f"/jobs/{job_id}/checkpoints").get("history", []):
                if c.get("status") == "COMPLETED":
                    out[c["id"]] = {k: c.get(k) for k in (
                        "trigger_timestamp", "end_to_end_duration", "checkpointed_size",
                        "alignment_buffered", "processed_data")}
        except Exception:  # noqa: BLE001 - a missed poll only thins the trace
            pass
        stop.wait(2)


def storm_records(accounts: int = 2000) -> list:
    """(key, value, txn_id): 12 transactions per account within 600 ms of event time, as
    offsets from 0 (moved to the send time when sent)."""
    out = []
    for a in range(accounts):
        acct = f"storm-{a:05d}"
        for i in range(12):
            txn = {"txn_id": f"storm-{a:05d}-{i:02d}", "account_id": acct, "merchant_id": "m-1",
                   "amount_cents": 1000, "currency": "EUR", "kind": "purchase",
                   "event_time_ms": i * 50, "channel": "web", "country": "DE"}
            out.append((acct.encode(), json.dumps(txn, separators=(",", ":")).encode(),
                        txn["txn_id"]))
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="fraud_latency", description=__doc__.split("\n")[0])
    p.add_argument("--rate", type=float, default=5000)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--accounts", type=int, default=20_000)
    p.add_argument("--storm", action="store_true")
    p.add_argument("--conf")
    p.add_argument("--trace", action="store_true",
                   help="also write run/latency-<run>-trace.json: every LARGE_AMOUNT alert's "
                        "send time and latency, and the job's checkpoints (trigger time, "
                        "duration), to see what the tail lines up with")
    p.add_argument("--linger-ms", type=int, default=0,
                   help="the producer's linger.ms (0: each send at once; Kafka's default is 5, "
                        "which batches sends and costs the broker far fewer requests)")
    args = p.parse_args(argv)
    if args.linger_ms < 0:
        p.error(f"--linger-ms: must be >= 0, got {args.linger_ms}")
    if args.seconds < WARMUP_S + TAIL_S + 10:
        p.error(f"--seconds: at least {WARMUP_S + TAIL_S + 10}")
    cfg = config_mod.load(args.conf, [])
    java_build.ensure_jars(cfg)  # the Maven jars and the jobs' own Java functions
    broker.kafka_up(cfg)
    cluster.flink_up(cfg)

    run_id = time.strftime("%Y%m%d%H%M%S")
    names = {k: f"bench.{run_id}.lat.{k}" for k in ("transactions", "accounts", "alerts",
                                                    "dlq")}
    from kafka.admin import KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(bootstrap_servers=cfg.kafka.bootstrap)
    admin.create_topics([NewTopic(n, 3, 1) for n in names.values()])
    admin.close()

    overrides = [f"--set=topics.{k}={v}" for k, v in names.items()]
    conf_args = ["--conf", args.conf] if args.conf else []
    job_id = job_id_of(flink_run(
        cfg, ROOT / "jobs/streaming/fraud.py",
        [*conf_args, *overrides, "--starting-offsets", "earliest",
         "--group-id", f"bench-lat-{run_id}"], detached=True).stdout)
    while rest(cfg, f"/jobs/{job_id}")["state"] != "RUNNING":
        time.sleep(0.5)
    all_running = lambda: all(v["status"] == "RUNNING"  # noqa: E731
                              for v in rest(cfg, f"/jobs/{job_id}")["vertices"])
    while not all_running():
        time.sleep(0.5)

    results = Path(cfg.paths.run_dir) / f"latency-{run_id}.json"
    ready, stop = mp.Event(), mp.Event()
    reader = mp.Process(target=consume, args=(cfg.kafka.bootstrap, names["alerts"],
                                              str(results), ready, stop))
    reader.start()
    ready.wait(60)
    checkpoints: dict[int, dict] = {}
    if args.trace:
        threading.Thread(target=poll_checkpoints, args=(cfg, job_id, checkpoints, stop),
                         daemon=True).start()

    # Event time follows the wall clock: the plan starts when the timed traffic will, after
    # the profiles are in and the accounts topic has gone idle (until event_time.idleness_ms
    # after its last record it holds the watermark back). Planned for that start, the
    # generator's records are sent as they are (its bad ones stay bad).
    planned_at = time.time()
    start_ms = int((planned_at + cfg.event_time.idleness_ms / 1000 + 2 + PROFILES_S) * 1000)
    count = int(args.rate * args.seconds)
    opts = generator.Options(
        seed=3, start_ms=start_ms, rate_per_s=args.rate, count=count, accounts=args.accounts,
        late_fraction=0.0, large_amount_fraction=0.01, txn_topic=names["transactions"],
        accounts_topic=names["accounts"])
    prod = producer(cfg.kafka.bootstrap, **{"linger.ms": args.linger_ms})
    records = list(generator.plan(opts))
    profiles = [r for r in records if r.category == "profile"]
    txns = [r for r in records if r.category != "profile"]
    for r in profiles:
        prod.produce(r.topic, key=r.key, value=r.value)
    prod.flush(60)
    late_s = time.time() - planned_at - PROFILES_S
    if late_s > 0:
        print(f"fraud_latency: sending {len(profiles):,} profiles took {late_s:.1f} s more than "
              f"the {PROFILES_S} s planned; the accounts topic may still hold the watermark "
              "when the timed traffic starts", file=sys.stderr)
    storm = storm_records() if args.storm else []
    storm_at = args.seconds / 2
    sent: dict[str, float] = {}
    time.sleep(max(0.0, start_ms / 1000 - time.time()))
    print(f"sending {count:,} events at {args.rate:,.0f}/s for {args.seconds:.0f} s"
          f"{' with a VELOCITY storm at ' + str(storm_at) + ' s' if storm else ''} ...",
          flush=True)
    t0 = start_ms / 1000
    for r in txns:
        due = t0 + r.schedule_s
        delay = due - time.time()
        if delay > 0:
            time.sleep(delay)
        if storm and r.schedule_s >= storm_at:
            now_ms = int(time.time() * 1000)
            for key, value, txn_id in storm:
                sent[txn_id] = time.time()
                prod.produce(names["transactions"], key=key, value=_shift(value, now_ms))
                prod.poll(0)
            storm = []
        txn_id = r.detail.get("txn_id")
        if txn_id and r.category not in ("duplicate", "conflicting_duplicate"):
            sent[txn_id] = time.time()
        prod.produce(r.topic, key=r.key, value=r.value)
        prod.poll(0)
    prod.flush(60)
    time.sleep(15)
    stop.set()
    reader.join(60)
    FlinkRest.of(cfg).cancel(job_id)

    seen = json.loads(results.read_text())
    lo, hi = t0 + WARMUP_S, t0 + args.seconds - TAIL_S
    by_rule: dict[str, list[float]] = {}
    by_severity: dict[str, list[float]] = {}
    appended: list[float] = []  # producer send -> alert appended to the log (Kafka time)
    series: dict[int, list[float]] = {}  # LARGE_AMOUNT by 10 s of the run, warm-up included
    trace: list[tuple[float, float, float]] = []
    for rule, severity, txn_id, read_at, log_at in seen.values():
        at = sent.get(txn_id)
        if at is not None and rule == "LARGE_AMOUNT":
            trace.append((round(at - t0, 3), round((read_at - at) * 1000, 1),
                          round((log_at - at) * 1000, 1)))
            if at >= t0:
                series.setdefault(int((at - t0) // 10), []).append((read_at - at) * 1000)
        if at is None or not lo <= at <= hi:
            continue
        ms = (read_at - at) * 1000
        by_rule.setdefault(rule, []).append(ms)
        by_severity.setdefault(severity, []).append(ms)
        if rule == "LARGE_AMOUNT":
            appended.append((log_at - at) * 1000)

    print()
    print(f"machine: {platform.node()}, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"{args.rate:,.0f} events/s for {args.seconds:.0f} s, {args.accounts:,} accounts, "
          f"1 % LARGE_AMOUNT; producer linger.ms {args.linger_ms}; timer grid "
          f"{cfg.fraud.timer_coalesce_ms} ms, buffer timeout "
          f"{cfg.fraud.buffer_timeout_ms} ms; alerts counted: sent in [{WARMUP_S} s, "
          f"{args.seconds - TAIL_S:.0f} s]")
    if not by_rule:
        print(f"fraud_latency: no alert of a transaction sent in [{WARMUP_S} s, "
              f"{args.seconds - TAIL_S:.0f} s] was read ({len(seen)} alerts read in all): "
              f"the job did not keep up or stalled; no figures", file=sys.stderr)
        return 1
    print(f"{'alerts of':<20}{'n':>7}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for name, values in [*sorted(by_rule.items()), *[(f"severity {k}", v) for k, v in
                                                      sorted(by_severity.items())]]:
        print(f"{name:<20}{len(values):>7}{statistics.median(values):>10.0f}"
              f"{pct(values, 0.99):>10.0f}{max(values):>10.0f}")
    if appended:
        print(f"LARGE_AMOUNT, send -> alert appended to the log (broker time): p50 "
              f"{statistics.median(appended):.0f} ms, p99 {pct(appended, 0.99):.0f} ms")
    if args.trace:
        path = results.with_name(f"latency-{run_id}-trace.json")
        path.write_text(json.dumps({
            "large_amount": sorted(trace), "columns": ["sent_s", "read_ms", "appended_ms"],
            "checkpoints": [{**c, "trigger_s": round(c["trigger_timestamp"] / 1000 - t0, 3)}
                            for _, c in sorted(checkpoints.items())]}))
        print(f"trace: {path}")
    print("LARGE_AMOUNT over the run (is it steady?): "
          + ", ".join(f"{10 * k}-{10 * k + 10} s p50 {statistics.median(v):.0f} / max "
                      f"{max(v):.0f} ms" for k, v in sorted(series.items())))
    return 0


def _shift(value: bytes, shift_ms: int) -> bytes:
    """A storm record with its event time moved by ``shift_ms``."""
    try:
        obj = json.loads(value)
    except ValueError:
        return value
    if isinstance(obj, dict) and isinstance(obj.get("event_time_ms"), int):
        obj["event_time_ms"] += shift_ms
        return json.dumps(obj, separators=(",", ":")).encode()
    return value


if __name__ == "__main__":
    sys.exit(main())
