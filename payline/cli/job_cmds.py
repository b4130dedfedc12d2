"""`payline submit`, `release`, `deploy`, `upgrade`, `rollback`, `savepoint` and `savepoints`:
the streaming jobs on a Flink cluster (local, or remote with ``--jobmanager``)."""

from __future__ import annotations

import time

from payline.cli.args import add_remote, passed_on, positive_int
from payline.flink.submit import flink_run, job_id_of
from payline.release import lifecycle, records, releases
from runtime.registry import STREAMING_JOBS
from runtime.settings import Config

JOB_KEYS = sorted(STREAMING_JOBS)


def register(sub) -> None:
    sb = sub.add_parser("submit", help="submit a streaming job to the Flink cluster")
    sb.add_argument("job", choices=JOB_KEYS)
    sb.add_argument("--bounded", action="store_true",
                    help="read to the offsets current at start, then finish")
    sb.add_argument("--starting-offsets", choices=("earliest", "committed"), default=None)
    sb.add_argument("--group-id", default=None)
    sb.add_argument("--from-savepoint", metavar="PATH")
    sb.add_argument("--attached", action="store_true", help="wait until the job finishes")
    add_remote(sb)
    sb.set_defaults(run=cmd_submit)

    rl = sub.add_parser("release", help="bundle a streaming job's code as an immutable version")
    rl.add_argument("job", choices=JOB_KEYS)
    rl.add_argument("--version", default=None, help="default: git describe")
    rl.set_defaults(run=cmd_release)
    dp = sub.add_parser("deploy", help="start a released version of a job, wait until it runs")
    dp.add_argument("job", choices=JOB_KEYS)
    dp.add_argument("--version", default=None, help="default: the latest release")
    dp.add_argument("--parallelism", type=positive_int, default=None)
    dp.add_argument("--from-savepoint", metavar="PATH", default=None)
    add_remote(dp)
    dp.set_defaults(run=cmd_deploy)
    up = sub.add_parser("upgrade", help="stop-with-savepoint, then start another version from it")
    up.add_argument("job", choices=JOB_KEYS)
    up.add_argument("--version", required=True)
    up.add_argument("--allow-non-restored-state", action="store_true",
                    help="drop the state of operators the new version no longer has")
    add_remote(up)
    up.set_defaults(run=cmd_upgrade)
    rb = sub.add_parser("rollback", help="back to the version before the last upgrade")
    rb.add_argument("job", choices=JOB_KEYS)
    rb.add_argument("--to-savepoint", metavar="PATH", default=None,
                    help="default: the savepoint taken at the upgrade")
    rb.add_argument("--keep-state", action="store_true",
                    help="stop the running version with a savepoint and start the previous "
                         "one from it: nothing replayed, no output written twice")
    add_remote(rb)
    rb.set_defaults(run=cmd_rollback)
    sp = sub.add_parser("savepoint", help="trigger a savepoint of a running job")
    sp.add_argument("job", choices=JOB_KEYS)
    sp.add_argument("--stop", action="store_true",
                    help="stop the job with it (then e.g. deploy --parallelism N from it)")
    add_remote(sp)
    sp.set_defaults(run=cmd_savepoint)
    sps = sub.add_parser("savepoints", help="list a job's savepoints")
    sps.add_argument("job", choices=JOB_KEYS)
    add_remote(sps)
    sps.set_defaults(run=cmd_savepoints)


def submit(cfg: Config, args, job: str) -> None:
    """`flink run` of the checkout's job script (not a release), and the job id it got."""
    job_args = passed_on(args)  # the job reads the same configuration as this command
    if getattr(args, "bounded", False):
        job_args.append("--bounded")
    if getattr(args, "starting_offsets", None):
        job_args += ["--starting-offsets", args.starting_offsets]
    if getattr(args, "group_id", None):
        job_args += ["--group-id", args.group_id]
    proc = flink_run(cfg, cfg.root / STREAMING_JOBS[job].script, job_args,
                     detached=not getattr(args, "attached", False),
                     from_savepoint=getattr(args, "from_savepoint", None))
    print(f"submitted {job}: job id {job_id_of(proc.stdout) or '?'}; "
          f"web UI {cfg.flink.rest_url}")


def cmd_submit(cfg: Config, args) -> int:
    submit(cfg, args, args.job)
    return 0


def cmd_release(cfg: Config, args) -> int:
    m = releases.release(cfg, args.job, args.version)
    print(f"released {args.job} {m['version']} (commit {m['commit']}): "
          f"{releases.release_dir(cfg, args.job, m['version'])}")
    return 0


def cmd_deploy(cfg: Config, args) -> int:
    d = lifecycle.deploy(cfg, args.job, args.version, args.parallelism, args.from_savepoint,
                         tuple(passed_on(args)))  # the job reads this command's config
    print(f"deployed {args.job} {d['version']}: job {d['job_id']} running; "
          f"web UI {cfg.flink.rest_url}")
    return 0


def cmd_upgrade(cfg: Config, args) -> int:
    d = lifecycle.upgrade(cfg, args.job, args.version, args.allow_non_restored_state)
    print(f"upgraded {args.job} {d['upgraded_from']} -> {d['version']} through "
          f"{d['savepoint']}: job {d['job_id']} running")
    return 0


def cmd_rollback(cfg: Config, args) -> int:
    d = lifecycle.rollback(cfg, args.job, args.to_savepoint, args.keep_state)
    print(f"rolled {args.job} back to {d['version']} from {d['from_savepoint']}: "
          f"job {d['job_id']} running")
    return 0


def cmd_savepoint(cfg: Config, args) -> int:
    r = lifecycle.savepoint(cfg, args.job, "stop" if args.stop else "manual", stop=args.stop)
    print(f"savepoint of {args.job} {r['version']}: {r['path']} "
          f"({r['size_bytes']:,} bytes)" + ("; the job is stopped" if args.stop else ""))
    return 0


def cmd_savepoints(cfg: Config, args) -> int:
    rows = records.savepoints(cfg, args.job, include_deleted=False)
    if not rows:
        print(f"no savepoints of {args.job}")
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r["time_ms"] / 1000))
        print(f"{when}Z  {r['version'] or '?':<24} {r['reason']:<10} "
              f"{r['size_bytes']:>12,} B  {r['path']}  ({r['deployment']})")
    return 0
