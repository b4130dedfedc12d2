"""`payline submit`, `release`, `deploy`, `upgrade`, `rollback`, `savepoint` and `savepoints`:
the streaming jobs on a Flink cluster (local, or remote with ``--jobmanager``)."""

from __future__ import annotations

from payline.cli.args import add_remote, command, emit, passed_on, positive_int
from payline.flink.rest import FlinkRest
from payline.flink.submit import flink_run, job_id_of
from payline.release import history, lifecycle, records, releases
from runtime.config import CODE_ROOT
from runtime.registry import STREAMING_JOBS
from runtime.settings import Config
from runtime.times import iso

JOB_KEYS = sorted(STREAMING_JOBS)


def register(sub) -> None:
    sb = command(sub, "submit", "submit the checkout's streaming job to Flink (no release)",
                 "`flink run` of the job script in this checkout, for development; production "
                 "goes through\n`release` and `deploy`, which record versions and savepoints.",
                 ["payline submit transactions", "payline submit fraud --starting-offsets "
                  "earliest --group-id fraud-replay",
                  "payline submit transactions --bounded --attached"])
    sb.add_argument("job", choices=JOB_KEYS, help="the streaming job")
    sb.add_argument("--bounded", action="store_true",
                    help="read to the offsets current at start, then finish")
    sb.add_argument("--starting-offsets", choices=("earliest", "committed"), default=None,
                    help="where a new consumer group starts (default: the job's own rule)")
    sb.add_argument("--group-id", default=None,
                    help="the Kafka consumer group (default: the job's group_id)")
    sb.add_argument("--from-savepoint", metavar="PATH", help="start from this savepoint")
    sb.add_argument("--attached", action="store_true", help="wait until the job finishes")
    add_remote(sb)
    sb.set_defaults(run=cmd_submit)

    rl = command(sub, "release", "bundle a streaming job's code as an immutable version",
                 "Bundle the job's code (udfs, runtime, jobs, the defaults, the Java functions' "
                 "jar) under\nops_dir/releases/JOB/VERSION with a manifest; a version is "
                 "never overwritten.",
                 ["payline release transactions", "payline release fraud --version v2"],
                 json_output=True)
    rl.add_argument("job", choices=JOB_KEYS, help="the streaming job")
    rl.add_argument("--version", default=None, help="the version's name (default: git describe)")
    rl.set_defaults(run=cmd_release)
    hs = command(sub, "releases", "a job's deployment history, one revision per deployment",
                 "Every deployment of the job, oldest first: when, its status (deployed, "
                 "superseded, failed),\nthe version, the action (deploy, upgrade, rollback) "
                 "and the savepoint it started from.",
                 ["payline releases transactions", "payline releases fraud --json"],
                 json_output=True)
    hs.add_argument("job", choices=JOB_KEYS, help="the streaming job")
    hs.set_defaults(run=cmd_releases)
    dp = command(sub, "deploy", "start a released version of a job, wait until it runs",
                 "Submit a release to the Flink cluster and wait until every task runs; "
                 "refused when the job\nalready runs (use `upgrade`).",
                 ["payline deploy transactions", "payline deploy fraud --version v2 "
                  "--parallelism 2", "payline deploy transactions --from-savepoint "
                  "file:/path/savepoint-ab12cd-0123456789ab --json"], json_output=True)
    dp.add_argument("job", choices=JOB_KEYS, help="the streaming job")
    dp.add_argument("--version", default=None, help="the release (default: the latest)")
    dp.add_argument("--parallelism", type=positive_int, default=None,
                    help="the job's parallelism (default: flink.default_parallelism)")
    dp.add_argument("--from-savepoint", metavar="PATH", default=None,
                    help="start from this savepoint (e.g. after `savepoint --stop`)")
    add_remote(dp)
    dp.set_defaults(run=cmd_deploy)
    up = command(sub, "upgrade", "stop-with-savepoint, then start another version from it",
                 "Stop the running version with a savepoint and start VERSION from it; when "
                 "VERSION cannot\ntake the state, the running version starts again from the "
                 "same savepoint and the command\nfails naming the operators.",
                 ["payline upgrade transactions --version v2",
                  "payline upgrade fraud --version v3 --allow-non-restored-state"],
                 json_output=True)
    up.add_argument("job", choices=JOB_KEYS, help="the streaming job")
    up.add_argument("--version", required=True, help="the release to start")
    up.add_argument("--allow-non-restored-state", action="store_true",
                    help="drop the state of operators the new version no longer has")
    add_remote(up)
    up.set_defaults(run=cmd_upgrade)
    rb = command(sub, "rollback", "back to the version before the last upgrade",
                 "Start the version before the last upgrade from the savepoint taken at that "
                 "upgrade (its\noutputs since then are written again), or with --keep-state "
                 "from a savepoint of the\nrunning version (nothing replayed).",
                 ["payline rollback transactions", "payline rollback fraud --keep-state",
                  "payline rollback transactions --to-savepoint "
                  "file:/path/savepoint-ab12cd-0123456789ab"], json_output=True)
    rb.add_argument("job", choices=JOB_KEYS, help="the streaming job")
    rb.add_argument("--to-savepoint", metavar="PATH", default=None,
                    help="default: the savepoint taken at the upgrade")
    rb.add_argument("--keep-state", action="store_true",
                    help="stop the running version with a savepoint and start the previous "
                         "one from it: nothing replayed, no output written twice")
    add_remote(rb)
    rb.set_defaults(run=cmd_rollback)
    sp = command(sub, "savepoint", "trigger a savepoint of a running job",
                 "Write a savepoint of the running job under checkpoints_dir/savepoints and "
                 "record it.",
                 ["payline savepoint transactions",
                  "payline savepoint fraud --stop   # then: deploy fraud --parallelism 2 "
                  "--from-savepoint PATH"], json_output=True)
    sp.add_argument("job", choices=JOB_KEYS, help="the streaming job")
    sp.add_argument("--stop", action="store_true",
                    help="stop the job with it (then e.g. deploy --parallelism N from it)")
    add_remote(sp)
    sp.set_defaults(run=cmd_savepoint)
    sps = command(sub, "savepoints", "list a job's savepoints",
                  "The job's recorded savepoints that retention kept, oldest first.",
                  ["payline savepoints transactions", "payline savepoints fraud --json"],
                  json_output=True)
    sps.add_argument("job", choices=JOB_KEYS, help="the streaming job")
    add_remote(sps)
    sps.set_defaults(run=cmd_savepoints)


def submit(cfg: Config, args, job: str) -> None:
    """`flink run` of the checkout's job script (not a release), and the job id it got."""
    FlinkRest.of(cfg).overview()  # one line within seconds, not `flink run` retrying for minutes
    job_args = passed_on(args)  # the job reads the same configuration as this command
    if getattr(args, "bounded", False):
        job_args.append("--bounded")
    if getattr(args, "starting_offsets", None):
        job_args += ["--starting-offsets", args.starting_offsets]
    if getattr(args, "group_id", None):
        job_args += ["--group-id", args.group_id]
    proc = flink_run(cfg, CODE_ROOT / STREAMING_JOBS[job].script, job_args,
                     detached=not getattr(args, "attached", False),
                     from_savepoint=getattr(args, "from_savepoint", None))
    print(f"submitted {job}: job id {job_id_of(proc.stdout) or '?'}; "
          f"web UI {cfg.flink.rest_url}")


def cmd_submit(cfg: Config, args) -> int:
    submit(cfg, args, args.job)
    return 0


def cmd_release(cfg: Config, args) -> int:
    m = releases.release(cfg, args.job, args.version)
    where = releases.release_dir(cfg, args.job, m["version"])
    emit(args, {**m, "path": str(where)},
         f"released {args.job} {m['version']} (commit {m['commit']}): {where}")
    return 0


def cmd_releases(cfg: Config, args) -> int:
    rows = history.history(cfg, args.job)
    emit(args, rows, history.format_history(rows) if rows else f"{args.job} was never deployed")
    return 0


def cmd_deploy(cfg: Config, args) -> int:
    d = lifecycle.deploy(cfg, args.job, args.version, args.parallelism, args.from_savepoint,
                         tuple(passed_on(args)))  # the job reads this command's config
    emit(args, d, f"deployed {args.job} {d['version']}: job {d['job_id']} running; "
                  f"web UI {cfg.flink.rest_url}")
    return 0


def cmd_upgrade(cfg: Config, args) -> int:
    d = lifecycle.upgrade(cfg, args.job, args.version, args.allow_non_restored_state)
    emit(args, d, f"upgraded {args.job} {d['upgraded_from']} -> {d['version']} through "
                  f"{d['savepoint']}: job {d['job_id']} running")
    return 0


def cmd_rollback(cfg: Config, args) -> int:
    d = lifecycle.rollback(cfg, args.job, args.to_savepoint, args.keep_state)
    emit(args, d, f"rolled {args.job} back to {d['version']} from {d['from_savepoint']}: "
                  f"job {d['job_id']} running")
    return 0


def cmd_savepoint(cfg: Config, args) -> int:
    r = lifecycle.savepoint(cfg, args.job, "stop" if args.stop else "manual", stop=args.stop)
    emit(args, r, f"savepoint of {args.job} {r['version']}: {r['path']} "
                  f"({r['size_bytes']:,} bytes)" + ("; the job is stopped" if args.stop else ""))
    return 0


def cmd_savepoints(cfg: Config, args) -> int:
    rows = records.savepoints(cfg, args.job, include_deleted=False)
    lines = [f"{iso(r['time_ms'])}  {r['version'] or '?':<24} {r['reason']:<10} "
             f"{r['size_bytes']:>12,} B  {r['path']}  ({r['deployment']})" for r in rows]
    emit(args, [{**r, "time": iso(r["time_ms"])} for r in rows],
         "\n".join(lines) or f"no savepoints of {args.job}")
    return 0
