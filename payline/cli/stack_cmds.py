"""`payline up`, `down`, `status`, `topics` and `archiver`: the local stack."""

from __future__ import annotations

import json

from jobs.archiver import run_forever
from payline import kafka_admin, status
from payline.cli.args import add_remote, passed_on
from payline.local import archiver_proc, stack
from runtime import kafka_clients
from runtime.settings import Config


def register(sub) -> None:
    upp = sub.add_parser("up", help="start Kafka and Flink on loopback, create topics")
    upp.add_argument("--secure", action="store_true",
                     help="TLS + SASL/SCRAM, a principal per component and ACLs (README "
                          "\"Security\"); the run dir stays secure")
    upp.set_defaults(run=cmd_up)
    sub.add_parser("down", help="stop what `up` started").set_defaults(run=cmd_down)
    st = sub.add_parser("status", help="what runs where")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    add_remote(st)
    st.set_defaults(run=cmd_status)
    sub.add_parser("topics", help="create the contract's topics").set_defaults(run=cmd_topics)
    ar = sub.add_parser("archiver", help="the raw-log archiver: topics -> Parquet lake")
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
    print(json.dumps(st, indent=2) if args.json else status.format_status(st))
    return 0


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
