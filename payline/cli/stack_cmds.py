"""`payline up`, `down`, `status`, `topics` and `archiver`: the local stack."""

from __future__ import annotations

from jobs.archiver import run_forever
from payline import kafka_admin, status
from payline.cli.args import add_remote, command, emit, passed_on
from payline.local import archiver_proc, stack
from runtime import kafka_clients
from runtime.settings import Config


def register(sub) -> None:
    upp = command(sub, "up", "start Kafka and Flink on loopback, create the topics",
                  "Start the local stack: fetch the jars once, start the KRaft broker, create the "
                  "contract's topics,\nstart the Flink standalone cluster, and wait until each "
                  "part answers. Idempotent: what\nalready runs is left as it is.",
                  ["payline up", "payline up --secure",
                   "payline up --set kafka.port=19092 --set flink.rest_port=18081"])
    upp.add_argument("--secure", action="store_true",
                     help="TLS + SASL/SCRAM, a principal per component and ACLs "
                          "(docs/security.md); the run dir stays secure")
    upp.set_defaults(run=cmd_up)
    command(sub, "down", "stop what `up` started",
            "Stop the archiver, the Flink cluster and the broker that `payline up` started "
            "(by the pids it\nrecorded), and check that they are gone. Data stays.",
            ["payline down"]).set_defaults(run=cmd_down)
    st = command(sub, "status", "what runs where, observed and never changed",
                 "Show the broker, the Flink cluster (local or remote), each job's version, "
                 "uptime, restarts,\nrecords in/out, event-time lag and pending records, the "
                 "consumer lag of each streaming job's\ngroup, and the archiver. A part that "
                 "does not answer is shown with how to start it.",
                 ["payline status", "payline status --check   # exit 1 when a part is down",
                  "payline status --json | jq .flink.jobs",
                  "payline status --jobmanager flink.example.net:8081"], json_output=True)
    st.add_argument("--check", action="store_true",
                    help="exit 1 when the broker, the Flink cluster, a streaming job or the "
                         "archiver is not running")
    add_remote(st)
    st.set_defaults(run=cmd_status)
    command(sub, "topics", "create the contract's topics (and ACLs in secure mode)",
            "Create the contract's topics on the broker (idempotent); in secure mode also "
            "apply the ACLs.",
            ["payline topics"]).set_defaults(run=cmd_topics)
    ar = command(sub, "archiver", "the raw-log archiver: topics -> Parquet lake",
                 "Run the archiver that lands every payments.* record exactly once in the "
                 "Parquet lake\n(paths.data_dir/raw), in the foreground or in the background.",
                 ["payline archiver start", "payline archiver stop",
                  "payline archiver run   # foreground, Ctrl-C to stop"])
    ar.add_argument("action", choices=("run", "start", "stop"),
                    help="run in the foreground, or start/stop it in the background")
    ar.set_defaults(run=cmd_archiver)


def cmd_up(cfg: Config, args) -> int:
    stack.up(cfg, secure=args.secure)
    print(status.format_status(status.status(cfg)))
    return 0


def cmd_down(cfg: Config, args) -> int:
    stack.down(cfg)
    return 0


def cmd_status(cfg: Config, args) -> int:
    st = status.status(cfg)
    emit(args, st, status.format_status(st))
    return 1 if args.check and status.problems(st) else 0


def cmd_topics(cfg: Config, args) -> int:
    kafka_admin.create_topics(cfg)
    if kafka_clients.active(cfg):
        kafka_admin.apply_acls(cfg)
    return 0


def cmd_archiver(cfg: Config, args) -> int:
    if args.action == "run":
        run_forever(cfg)
    elif args.action == "start":
        archiver_proc.archiver_up(cfg, passed_on(args))
    else:
        archiver_proc.archiver_down(cfg)
    return 0
