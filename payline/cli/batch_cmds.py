"""`payline reconcile`, `schedule` and `package-batch`: the batch layer."""

from __future__ import annotations

from pathlib import Path

from jobs.batch import reconcile
from payline import schedule
from payline.cli.args import command, print_json
from payline.errors import ScheduleError
from payline.release import bundle
from runtime import progress
from runtime.errors import UsageError
from runtime.settings import Config
from runtime.times import interval


def register(sub) -> None:
    rc = command(sub, "reconcile", "recompute an interval from the raw log (Spark) and "
                                   "reconcile it with the stream",
                 "Recompute the interval's window aggregates and alerts from the raw log, "
                 "classify every\ndifference with the stream's committed outputs, run the "
                 "data-quality suites and the drift\nchecks, and write the results and the "
                 "analyst report. Exit 1 when a difference is\nunexplained or the accounting "
                 "identity does not hold.",
                 ["payline reconcile --start 2026-12-01T10:00:00Z --end 2026-12-01T11:00:00Z",
                  "payline reconcile --start 2026-12-01T10:00Z --end 2026-12-01T10:05Z --json",
                  "payline reconcile --start 1796170200000 --end 1796170500000 "
                  "--master spark://127.0.0.1:7077"], json_output=True)
    rc.add_argument("--start", required=True,
                    help="the first window's start: ISO 8601 (UTC unless an offset is given) "
                         "or epoch ms")
    rc.add_argument("--end", required=True, help="the end of the interval (exclusive)")
    rc.add_argument("--master", default=None, help="Spark master (default local[*])")
    rc.set_defaults(run=cmd_reconcile)
    pk = command(sub, "package-batch", "zip the batch code for spark-submit --py-files",
                 "Zip udfs, runtime and jobs with the defaults, for `spark-submit --py-files` "
                 "on a cluster.",
                 ["payline package-batch", "payline package-batch --out /tmp/batch.zip"])
    pk.add_argument("--out", default="dist/payline-batch.zip",
                    help="zip to write (default dist/payline-batch.zip)")
    pk.set_defaults(run=cmd_package_batch)
    sc = command(sub, "schedule", "reconcile each closed interval once, catching up",
                 "Reconcile every interval of --every that has closed (plus "
                 "batch.schedule_grace_ms) and\nwas not reconciled yet, oldest first; then "
                 "wait for the next one (or exit with --once).\nOne scheduler at a time "
                 "(a lock file).",
                 ["payline schedule", "payline schedule --every 15m",
                  "payline schedule --once   # from cron"])
    sc.add_argument("--every", default="5m", help="interval length, e.g. 5m (default)")
    sc.add_argument("--once", action="store_true",
                    help="run what is due, then exit (for cron)")
    sc.set_defaults(run=cmd_schedule)


def cmd_reconcile(cfg: Config, args) -> int:
    """The batch job in this process (Spark in local mode unless --master)."""
    start_ms, end_ms = reconcile.interval_of(args, cfg)
    progress.phase(f"reconcile {interval(start_ms, end_ms)}: starting Spark")
    results = reconcile.run_once(cfg, start_ms, end_ms, args.master)
    progress.clear()
    if args.json:
        print_json(reconcile.result_document(results))
    else:
        reconcile.report(results)
    return reconcile.exit_code(results["summary"])


def cmd_package_batch(cfg: Config, args) -> int:
    print(bundle.build(Path(args.out).absolute()))
    return 0


def cmd_schedule(cfg: Config, args) -> int:
    every_ms = schedule.parse_every(args.every, cfg.event_time.window_ms)
    spark = None

    def reconcile_interval(start: int, end: int) -> int:
        nonlocal spark
        spark = spark or reconcile.spark_session(None)
        try:
            results = reconcile.run(cfg, start, end, spark)
        except UsageError as exc:  # e.g. no raw log yet: nothing to schedule against
            raise ScheduleError(str(exc)) from None
        reconcile.report(results)
        return reconcile.exit_code(results["summary"])

    try:
        return schedule.run(cfg.paths.run_dir / "schedule.lock",
                            cfg.paths.data_dir / "reconciliation" / "schedule.json",
                            every_ms, cfg.batch.schedule_grace_ms, reconcile_interval,
                            once=args.once)
    finally:
        if spark is not None:
            spark.stop()
