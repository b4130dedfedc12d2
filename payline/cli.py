"""payline: operate the payments pipeline.

    payline [--conf FILE] [--set section.key=value ...] COMMAND [options]

Commands:
    up         start the local Kafka broker and Flink cluster, create the topics
    down       stop what `up` started
    status     what runs where: broker address, Flink web UI, Prometheus ports, logs
    topics     create the contract's topics (also done by `up`)
    generate   send generated payment traffic to Kafka
    demo       the main job end to end on the embedded default stack

A user error (bad argument, bad configuration value) exits 2 with one line naming it.
A part of the stack that does not start exits 1 with its name and where its log is.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from payline import config as config_mod
from payline.config import Config, ConfigError


class UsageError(ValueError):
    pass


# job name -> its module under jobs/streaming/
DEMO_EVENT_TIME_S = 360
STREAMING_JOBS = {"transactions": "transactions.py", "fraud": "fraud.py"}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line, without the usage block."""

    def error(self, message: str):  # noqa: D401
        raise UsageError(f"{self.prog}: {message}")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _jobmanager(text: str) -> str:
    try:
        return config_mod.parse_address("--jobmanager", text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("conf: --jobmanager ")) from None


def _remote(parser) -> None:
    parser.add_argument("--jobmanager", metavar="HOST:PORT", type=_jobmanager, default=None,
                        help="the REST address of a remote Flink cluster's JobManager "
                             "(default: flink.jobmanager, '' = the local cluster)")


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _spike(text: str):
    from payline.generator import Spike

    try:
        return Spike.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--spike: ")) from None


def build_parser() -> _Parser:
    p = _Parser(prog="payline", description="Operate the payline payments pipeline.")
    p.add_argument("--conf", metavar="FILE", help="a TOML overlay merged over conf/payline.toml")
    p.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[],
                   help="override one configuration value (repeatable)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    upp = sub.add_parser("up", help="start Kafka and Flink on loopback, create topics")
    upp.add_argument("--secure", action="store_true",
                     help="TLS + SASL/SCRAM, a principal per component and ACLs (README "
                          "\"Security\"); the run dir stays secure")
    sub.add_parser("down", help="stop what `up` started")
    st = sub.add_parser("status", help="what runs where")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    _remote(st)
    sub.add_parser("topics", help="create the contract's topics")

    sb = sub.add_parser("submit", help="submit a streaming job to the Flink cluster")
    sb.add_argument("job", choices=sorted(STREAMING_JOBS))
    sb.add_argument("--bounded", action="store_true",
                    help="read to the offsets current at start, then finish")
    sb.add_argument("--starting-offsets", choices=("earliest", "committed"), default=None)
    sb.add_argument("--group-id", default=None)
    sb.add_argument("--from-savepoint", metavar="PATH")
    sb.add_argument("--attached", action="store_true", help="wait until the job finishes")
    _remote(sb)

    ar = sub.add_parser("archiver", help="the raw-log archiver: topics -> Parquet lake")
    ar.add_argument("action", choices=("run", "start", "stop"),
                    help="run in the foreground, or start/stop it in the background")

    rc = sub.add_parser("reconcile", help="recompute an interval from the raw log (Spark) and "
                                          "reconcile it with the stream's outputs")
    rc.add_argument("--start", required=True, help="first window start: ISO 8601 or epoch ms")
    rc.add_argument("--end", required=True, help="end of the interval (exclusive)")
    rc.add_argument("--master", default=None, help="Spark master (default local[*])")

    rl = sub.add_parser("release", help="bundle a streaming job's code as an immutable version")
    rl.add_argument("job", choices=sorted(STREAMING_JOBS))
    rl.add_argument("--version", default=None, help="default: git describe")
    dp = sub.add_parser("deploy", help="start a released version of a job, wait until it runs")
    dp.add_argument("job", choices=sorted(STREAMING_JOBS))
    dp.add_argument("--version", default=None, help="default: the latest release")
    dp.add_argument("--parallelism", type=_positive_int, default=None)
    dp.add_argument("--from-savepoint", metavar="PATH", default=None)
    _remote(dp)
    up = sub.add_parser("upgrade", help="stop-with-savepoint, then start another version from it")
    up.add_argument("job", choices=sorted(STREAMING_JOBS))
    up.add_argument("--version", required=True)
    up.add_argument("--allow-non-restored-state", action="store_true",
                    help="drop the state of operators the new version no longer has")
    _remote(up)
    rb = sub.add_parser("rollback", help="back to the version before the last upgrade")
    rb.add_argument("job", choices=sorted(STREAMING_JOBS))
    rb.add_argument("--to-savepoint", metavar="PATH", default=None,
                    help="default: the savepoint taken at the upgrade")
    rb.add_argument("--keep-state", action="store_true",
                    help="stop the running version with a savepoint and start the previous "
                         "one from it: nothing replayed, no output written twice")
    _remote(rb)
    sp = sub.add_parser("savepoint", help="trigger a savepoint of a running job")
    sp.add_argument("job", choices=sorted(STREAMING_JOBS))
    sp.add_argument("--stop", action="store_true",
                    help="stop the job with it (then e.g. deploy --parallelism N from it)")
    _remote(sp)
    sps = sub.add_parser("savepoints", help="list a job's savepoints")
    sps.add_argument("job", choices=sorted(STREAMING_JOBS))
    _remote(sps)

    pk = sub.add_parser("package-batch", help="zip the batch code for spark-submit --py-files")
    pk.add_argument("--out", default="dist/payline-batch.zip",
                    help="zip to write (default dist/payline-batch.zip)")

    sc = sub.add_parser("schedule", help="reconcile each closed interval once, catching up")
    sc.add_argument("--every", default="5m", help="interval length, e.g. 5m (default)")
    sc.add_argument("--once", action="store_true",
                    help="run what is due, then exit (for cron)")

    so = sub.add_parser("soak", help="chaos soak: traffic with spikes and injected faults, "
                                     "then loss and duplication checked by reconciliation")
    so.add_argument("--duration", type=_positive_int, metavar="SECONDS",
                    help="seconds of traffic (default soak.duration_s)")
    so.add_argument("--rate", type=_positive_int, metavar="EVENTS_PER_S",
                    help="events per second outside the spikes (default soak.rate_per_s)")
    so.add_argument("--faults", type=_positive_int, metavar="N",
                    help="faults to inject (default soak.faults)")
    so.add_argument("--seed", type=_positive_int, help="the fault plan's seed")
    so.add_argument("--kinds", metavar="KIND,KIND",
                    help="fault kinds to draw from (default soak.kinds)")
    g = sub.add_parser("generate", help="send generated traffic to Kafka")
    _generator_args(g)
    d = sub.add_parser("demo", help="run the main job end to end on the local stack")
    d.add_argument("--count", type=_positive_int, default=20000,
                   help="transactions to generate (default 20000)")
    d.add_argument("--seed", type=_positive_int, default=None)
    return p


def _generator_args(g: argparse.ArgumentParser) -> None:
    g.add_argument("--count", type=_positive_int, help="transactions to send")
    g.add_argument("--duration", type=_positive_float, metavar="SECONDS",
                   help="send for this long (of the schedule) instead of --count")
    g.add_argument("--rate", type=_positive_float, metavar="EVENTS_PER_S",
                   help="events per second of the schedule")
    g.add_argument("--max-speed", action="store_true",
                   help="send as fast as possible (event times still follow --rate)")
    g.add_argument("--accounts", type=_positive_int)
    g.add_argument("--merchants", type=_positive_int)
    g.add_argument("--seed", type=_positive_int)
    g.add_argument("--start-ms", type=_positive_int,
                   help="event time of the first transaction (default: now, to the minute)")
    g.add_argument("--spike", type=_spike, action="append", default=[],
                   metavar="FACTORx:DURATIONs@STARTs", help="e.g. 10x:10s@30s (repeatable)")
    g.add_argument("--out-of-order-ms", type=_positive_int)
    for name in ("out-of-order", "duplicate", "conflicting-duplicate", "late", "malformed",
                 "schema-violation", "invalid-value", "large-amount"):
        g.add_argument(f"--{name}-fraction", type=_fraction, metavar="F")
    g.add_argument("--late-by-ms", type=_positive_int)
    g.add_argument("--late-after", type=_positive_int, metavar="N",
                   help="no late record among the first N (default 1000)")
    g.add_argument("--manifest", metavar="FILE",
                   help="write every record sent, its category, partition and offset (JSONL)")


def generator_options(cfg: Config, args: argparse.Namespace | None = None):
    from payline.generator import Options

    gc = cfg.generator
    a = vars(args) if args is not None else {}

    def pick(name, default):
        value = a.get(name)
        return default if value is None else value

    count = pick("count", gc.count)
    duration = a.get("duration")
    if duration is not None and a.get("count") is None:
        count = None
    start_ms = pick("start_ms", (int(time.time() * 1000) // 60000) * 60000)
    opts = Options(
        seed=pick("seed", gc.seed), start_ms=start_ms, rate_per_s=pick("rate", gc.rate_per_s),
        count=count, duration_s=duration, accounts=pick("accounts", gc.accounts),
        merchants=pick("merchants", gc.merchants), spikes=tuple(a.get("spike") or ()),
        out_of_order_ms=pick("out_of_order_ms", gc.out_of_order_ms),
        out_of_order_fraction=pick("out_of_order_fraction", gc.out_of_order_fraction),
        duplicate_fraction=pick("duplicate_fraction", gc.duplicate_fraction),
        conflicting_duplicate_fraction=pick("conflicting_duplicate_fraction",
                                            gc.conflicting_duplicate_fraction),
        late_fraction=pick("late_fraction", gc.late_fraction),
        late_by_ms=pick("late_by_ms", gc.late_by_ms),
        late_after=pick("late_after", gc.late_after),
        malformed_fraction=pick("malformed_fraction", gc.malformed_fraction),
        schema_violation_fraction=pick("schema_violation_fraction",
                                       gc.schema_violation_fraction),
        invalid_value_fraction=pick("invalid_value_fraction", gc.invalid_value_fraction),
        large_amount_fraction=pick("large_amount_fraction", gc.large_amount_fraction),
        high_risk_account_fraction=gc.high_risk_account_fraction,
        currencies=cfg.contract.currencies,
        txn_topic=cfg.topics.transactions, accounts_topic=cfg.topics.accounts,
    )
    if opts.accounts < 1:
        raise UsageError("payline generate: argument --accounts: must be >= 1")
    if opts.merchants < 1:
        raise UsageError("payline generate: argument --merchants: must be >= 1")
    total_bad = (opts.duplicate_fraction + opts.conflicting_duplicate_fraction
                 + opts.late_fraction + opts.malformed_fraction
                 + opts.schema_violation_fraction + opts.invalid_value_fraction)
    if total_bad >= 1.0:
        raise UsageError("payline generate: the --*-fraction values must add up to less than 1")
    if opts.out_of_order_ms >= cfg.event_time.out_of_orderness_ms:
        raise UsageError(
            f"payline generate: argument --out-of-order-ms: must stay below "
            f"event_time.out_of_orderness_ms ({cfg.event_time.out_of_orderness_ms}) "
            f"to be in bound"
        )
    return opts


def cmd_generate(cfg: Config, args) -> int:
    from payline import generator, security

    opts = generator_options(cfg, args)
    report = generator.send(security.librdkafka_config(cfg, "generator"), opts,
                            max_speed=args.max_speed,
                            manifest=args.manifest)
    print(report.summary())
    if args.manifest:
        print(f"manifest: {args.manifest}")
    return 0


def cmd_submit(cfg: Config, args) -> int:
    import re

    from payline.flink_cli import flink_run

    job_args = _cli_args(args)  # the job reads the same configuration as this command
    if args.bounded:
        job_args.append("--bounded")
    if args.starting_offsets:
        job_args += ["--starting-offsets", args.starting_offsets]
    if args.group_id:
        job_args += ["--group-id", args.group_id]
    script = cfg.root / "jobs" / "streaming" / STREAMING_JOBS[args.job]
    proc = flink_run(cfg, script, job_args, detached=not args.attached,
                     from_savepoint=args.from_savepoint)
    found = re.search(r"JobID ([0-9a-f]{32})", proc.stdout)
    print(f"submitted {args.job}: job id {found.group(1) if found else '?'}; "
          f"web UI {cfg.flink.rest_url}")
    return 0


def _running_job(cfg: Config, name: str) -> str | None:
    from payline.stack import flink_rest

    listing = flink_rest(cfg, "/jobs/overview") or {}
    for job in listing.get("jobs", []):
        if job["name"] == name and job["state"] in ("RUNNING", "CREATED", "RESTARTING"):
            return job["jid"]
    return None


def cmd_ops(cfg: Config, args) -> int:
    """release / deploy / upgrade / rollback / savepoint / savepoints (payline/ops.py)."""
    from payline import ops

    try:
        if args.command == "release":
            m = ops.release(cfg, args.job, args.version)
            print(f"released {args.job} {m['version']} (commit {m['commit']}): "
                  f"{ops.release_dir(cfg, args.job, m['version'])}")
        elif args.command == "deploy":
            d = ops.deploy(cfg, args.job, args.version, args.parallelism, args.from_savepoint,
                           tuple(_cli_args(args)))  # the job reads this command's config
            print(f"deployed {args.job} {d['version']}: job {d['job_id']} running; "
                  f"web UI {cfg.flink.rest_url}")
        elif args.command == "upgrade":
            d = ops.upgrade(cfg, args.job, args.version, args.allow_non_restored_state)
            print(f"upgraded {args.job} {d['upgraded_from']} -> {d['version']} through "
                  f"{d['savepoint']}: job {d['job_id']} running")
        elif args.command == "rollback":
            d = ops.rollback(cfg, args.job, args.to_savepoint, args.keep_state)
            print(f"rolled {args.job} back to {d['version']} from {d['from_savepoint']}: "
                  f"job {d['job_id']} running")
        elif args.command == "savepoint":
            r = ops.savepoint(cfg, args.job, "stop" if args.stop else "manual", stop=args.stop)
            print(f"savepoint of {args.job} {r['version']}: {r['path']} "
                  f"({r['size_bytes']:,} bytes)" + ("; the job is stopped" if args.stop else ""))
        else:
            rows = ops.savepoints(cfg, args.job, include_deleted=False)
            if not rows:
                print(f"no savepoints of {args.job}")
            for r in rows:
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["time_ms"] / 1000))
                print(f"{when}Z  {r['version'] or '?':<24} {r['reason']:<10} "
                      f"{r['size_bytes']:>12,} B  {r['path']}  ({r['deployment']})")
    except ops.OpsError as exc:
        print(f"payline {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(cfg: Config, args) -> int:
    from jobs.streaming import FRAUD_JOB_NAME, TRANSACTIONS_JOB_NAME
    from payline import archiver, generator, security, stack, topics

    stack.up(cfg)
    stack.archiver_up(cfg, _cli_args(args))
    # six minutes of event time, so that several windows close and can be reconciled
    ns = argparse.Namespace(count=args.count, seed=args.seed,
                            rate=max(1.0, args.count / DEMO_EVENT_TIME_S))
    opts = generator_options(cfg, ns)
    print(f"generating {opts.count} transactions (seed {opts.seed}, "
          f"{DEMO_EVENT_TIME_S} s of event time) to {cfg.topics.transactions} at "
          f"{security.bootstrap(cfg)} ...")
    # Traffic first, jobs second: a job that has sat on empty partitions for the idle timeout
    # lets the first partition it reads after a burst set the watermark, and much of the rest
    # of the burst arrives late (Flink's idleness at work). The jobs then read a backlog.
    report = generator.send(security.librdkafka_config(cfg, "generator"), opts, max_speed=True)
    for job, name in (("transactions", TRANSACTIONS_JOB_NAME), ("fraud", FRAUD_JOB_NAME)):
        job_id = _running_job(cfg, name)
        if job_id:
            print(f"{job} job already running ({job_id})")
            continue
        cmd_submit(cfg, argparse.Namespace(job=job, conf=args.conf, set=args.set,
                                           bounded=False, starting_offsets=None,
                                           group_id=None, from_savepoint=None,
                                           attached=False))
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
        print(f"  {name:<30} {len(topics.read_topic(cfg, name)):>8} records")
    print("  (windows still open wait for later traffic to move the watermark past them)")
    alerts = [json.loads(r.value) for r in topics.read_topic(cfg, cfg.topics.alerts)]
    by_rule = Counter(a["rule"] for a in {a["alert_id"]: a for a in alerts}.values())
    print(f"alerts (at-least-once; distinct by alert_id) on {cfg.topics.alerts}: "
          + (", ".join(f"{rule} {n}" for rule, n in sorted(by_rule.items())) or "none"))
    print()
    by_topic = Counter(archiver.read_lake(cfg).column("topic").to_pylist())
    print(f"raw log (Parquet, exactly once per topic/partition/offset): {cfg.paths.raw_dir}")
    for name, n in sorted(by_topic.items()):
        print(f"  {name:<30} {n:>8} rows")
    print()
    print(stack.format_status(stack.status(cfg)))
    print()
    code = demo_reconcile(cfg, args, opts)
    print()
    print("demo: the stack and the jobs stay up; `payline status` shows them, "
          "`payline down` stops everything.")
    return code


def demo_reconcile(cfg: Config, args, opts) -> int:
    """Reconcile the demo's closed windows, from the window of its late records up to the
    last window the watermark has passed, once the archiver holds the committed outputs."""
    from payline import archiver, topics

    w = cfg.event_time.window_ms
    last_ms = opts.start_ms + int(opts.count / opts.rate_per_s * 1000)
    start = (opts.start_ms - opts.late_by_ms) // w * w
    end = (last_ms - cfg.event_time.out_of_orderness_ms) // w * w - w
    wanted = {t: len(topics.read_topic(cfg, t)) for t in (
        cfg.topics.aggregates, cfg.topics.late, cfg.topics.dlq)}
    deadline = time.monotonic() + 120
    while any(archiver.read_lake(cfg, t).num_rows < n for t, n in wanted.items()):
        if time.monotonic() > deadline:
            print("demo: the archiver has not caught up with the outputs; reconciling anyway")
            break
        time.sleep(2)
    print(f"reconciling windows [{start}, {end}) from the raw log (Spark) ...")
    argv = ["--start", str(start), "--end", str(end), *_cli_args(args)]
    from jobs.batch import reconcile

    return reconcile.main(argv)


def cmd_reconcile(args) -> int:
    """The batch job's own main, in this process (Spark in local mode unless --master)."""
    from jobs.batch import reconcile

    argv = ["--start", args.start, "--end", args.end, *_cli_args(args)]
    if args.master:
        argv += ["--master", args.master]
    return reconcile.main(argv)


def cmd_schedule(cfg: Config, args) -> int:
    from payline import schedule

    try:
        every_ms = schedule.parse_every(args.every, cfg.event_time.window_ms)
    except schedule.ScheduleError as exc:
        print(f"payline schedule: {exc}", file=sys.stderr)
        return 2
    spark = None

    def reconcile(start: int, end: int) -> int:
        nonlocal spark
        from jobs.batch import reconcile as job

        spark = spark or job.spark_session(None)
        try:
            results = job.run(cfg, start, end, spark)
        except job.UsageError as exc:  # e.g. no raw log yet: nothing to schedule against
            raise schedule.ScheduleError(f"schedule: {exc}") from None
        job.report(results)
        return job.exit_code(results["summary"])

    try:
        return schedule.run(cfg.paths.run_dir / "schedule.lock",
                            cfg.paths.data_dir / "reconciliation" / "schedule.json",
                            every_ms, cfg.batch.schedule_grace_ms, reconcile, once=args.once)
    except schedule.ScheduleError as exc:
        print(f"payline {exc}", file=sys.stderr)
        return 2
    finally:
        if spark is not None:
            spark.stop()


def _cli_args(args) -> list[str]:
    """The --conf/--set of this call, for a process started on its behalf."""
    out = ["--conf", str(Path(args.conf).resolve())] if args.conf else []
    for item in args.set:
        out += ["--set", item]
    return out


def cmd_soak(cfg: Config, args) -> int:
    import dataclasses

    from payline import ops, soak

    changes = {}
    for arg, key, least in (("duration", "duration_s", 30), ("rate", "rate_per_s", 1),
                            ("faults", "faults", 0), ("seed", "seed", 0)):
        value = getattr(args, arg)
        if value is not None:
            if value < least:
                raise UsageError(f"payline soak: argument --{arg}: must be >= {least}, "
                                 f"got {value}")
            changes[key] = value
    if args.kinds is not None:
        kinds = tuple(k for k in args.kinds.replace(",", " ").split() if k)
        bad = [k for k in kinds if k not in soak.KINDS] or ([] if kinds else [args.kinds])
        if bad:
            raise UsageError(f"payline soak: argument --kinds: unknown fault kind {bad[0]!r} "
                             f"(known: {', '.join(soak.KINDS)})")
        changes["kinds"] = kinds
    cfg = cfg.replace(soak=dataclasses.replace(cfg.soak, **changes))
    try:
        summary = soak.run(cfg, _cli_args(args))
    except (soak.SoakError, ops.OpsError) as exc:
        print(f"payline soak: {exc}", file=sys.stderr)
        return 1
    return 0 if summary["ok"] else 1


def cmd_archiver(cfg: Config, args) -> int:
    from payline import archiver, stack

    if args.action == "run":
        archiver.run_forever(cfg)
    elif args.action == "start":
        stack.archiver_up(cfg, _cli_args(args))
    else:
        stack.archiver_down(cfg)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        overrides = list(args.set)
        if getattr(args, "jobmanager", None) is not None:
            overrides.append(f"flink.jobmanager={args.jobmanager}")
        cfg = config_mod.load(args.conf, overrides)
        return _dispatch(cfg, args)
    except (UsageError, ConfigError) as exc:
        print(f"{exc}" if str(exc).startswith(("payline", "conf:", "--set")) else
              f"payline: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("payline: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `payline status | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except Exception as exc:  # a failure of the stack, reported by name, not as a traceback
        from payline.archiver import ArchiverError
        from payline.generator import SendError
        from payline.security import SecurityError
        from payline.stack import StackError
        from payline.topics import TopicReadError

        if isinstance(exc, (StackError, SendError, TopicReadError, ArchiverError,
                            SecurityError)):
            print(f"payline: {exc}", file=sys.stderr)
            return 1
        raise


def _dispatch(cfg: Config, args) -> int:
    from payline import stack, topics

    if args.command == "up":
        stack.up(cfg, secure=args.secure)
        print(stack.format_status(stack.status(cfg)))
        return 0
    if args.command == "down":
        stack.down(cfg)
        return 0
    if args.command == "status":
        st = stack.status(cfg)
        print(json.dumps(st, indent=2) if args.json else stack.format_status(st))
        return 0
    if args.command == "topics":
        topics.create_topics(cfg)
        from payline import security

        if security.active(cfg):
            security.apply_acls(cfg)
        return 0
    if args.command == "submit":
        return cmd_submit(cfg, args)
    if args.command == "generate":
        return cmd_generate(cfg, args)
    if args.command == "demo":
        return cmd_demo(cfg, args)
    if args.command == "archiver":
        return cmd_archiver(cfg, args)
    if args.command == "reconcile":
        return cmd_reconcile(args)
    if args.command == "schedule":
        return cmd_schedule(cfg, args)
    if args.command == "soak":
        return cmd_soak(cfg, args)
    if args.command in ("release", "deploy", "upgrade", "rollback", "savepoint", "savepoints"):
        return cmd_ops(cfg, args)
    if args.command == "package-batch":
        from payline import pyfiles

        print(pyfiles.build(Path(args.out).absolute()))
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
