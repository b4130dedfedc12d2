"""`payline reconcile`, `schedule` and `package-batch`: the batch layer."""

from __future__ import annotations

from pathlib import Path

from jobs.batch import reconcile
from payline import schedule
from payline.cli.args import passed_on
from payline.errors import ScheduleError
from payline.release import bundle
from runtime.errors import UsageError
from runtime.settings import Config


def register(sub) -> None:
    rc = sub.add_parser("reconcile", help="recompute an interval from the raw log (Spark) and "
                                          "reconcile it with the stream's outputs")
    rc.add_argument("--start", required=True, help="first window start: ISO 8601 or epoch ms")
    rc.add_argument("--end", required=True, help="end of the interval (exclusive)")
    rc.add_argument("--master", default=None, help="Spark master (default local[*])")
    rc.set_defaults(run=cmd_reconcile)
    pk = sub.add_parser("package-batch", help="zip the batch code for spark-submit --py-files")
    pk.add_argument("--out", default="dist/payline-batch.zip",
                    help="zip to write (default dist/payline-batch.zip)")
    pk.set_defaults(run=cmd_package_batch)
    sc = sub.add_parser("schedule", help="reconcile each closed interval once, catching up")
    sc.add_argument("--every", default="5m", help="interval length, e.g. 5m (default)")
    sc.add_argument("--once", action="store_true",
                    help="run what is due, then exit (for cron)")
    sc.set_defaults(run=cmd_schedule)


def cmd_reconcile(cfg: Config, args) -> int:
    """The batch job's own main, in this process (Spark in local mode unless --master)."""
    argv = ["--start", args.start, "--end", args.end, *passed_on(args)]
    if args.master:
        argv += ["--master", args.master]
    return reconcile.main(argv)


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
