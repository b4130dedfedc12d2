"""`payline generate` (payment traffic into Kafka) and `payline soak` (the chaos soak)."""

from __future__ import annotations

import dataclasses

from payline import kafka_admin
from payline.cli.args import command, fraction, passed_on, positive_float, positive_int, spike
from payline.generator.options import generator_options
from payline.generator.send import send
from payline.soak import runner
from payline.soak.plan import KINDS
from runtime import kafka_clients
from runtime.errors import UsageError
from runtime.settings import Config


def register(sub) -> None:
    so = command(sub, "soak", "chaos soak: traffic, spikes and injected faults, then loss and "
                              "duplication checked",
                 "Send traffic with spikes while injecting faults (TaskManager kills, JobManager "
                 "restarts, broker\nkills, a read-only checkpoint disk, ...), then check by "
                 "reconciliation that nothing was\nlost or duplicated. Exit 1 when a check "
                 "fails. Runs on the stack of the configuration given.",
                 ["payline soak --duration 300 --faults 4",
                  "payline soak --kinds taskmanager_kill,broker_kill --seed 7"])
    so.add_argument("--duration", type=positive_int, metavar="SECONDS",
                    help="seconds of traffic (default soak.duration_s)")
    so.add_argument("--rate", type=positive_int, metavar="EVENTS_PER_S",
                    help="events per second outside the spikes (default soak.rate_per_s)")
    so.add_argument("--faults", type=positive_int, metavar="N",
                    help="faults to inject (default soak.faults)")
    so.add_argument("--seed", type=positive_int, help="the fault plan's seed (default soak.seed)")
    so.add_argument("--kinds", metavar="KIND,KIND",
                    help="fault kinds to draw from (default soak.kinds): " + ", ".join(KINDS))
    so.set_defaults(run=cmd_soak)
    g = command(sub, "generate", "send generated payment traffic to Kafka",
                "Send generated transactions (and the accounts they need) to the contract's "
                "topics, with\nconfigurable fractions of duplicates, late, malformed and "
                "invalid records (defaults:\nthe [generator] section).",
                ["payline generate --count 10000",
                 "payline generate --duration 60 --rate 2000 --spike 10x:10s@30s",
                 "payline generate --count 1000 --late-fraction 0.05 --manifest sent.jsonl"])
    generator_args(g)
    g.set_defaults(run=cmd_generate)


def generator_args(g) -> None:
    g.add_argument("--count", type=positive_int, help="transactions to send")
    g.add_argument("--duration", type=positive_float, metavar="SECONDS",
                   help="send for this long (of the schedule) instead of --count")
    g.add_argument("--rate", type=positive_float, metavar="EVENTS_PER_S",
                   help="events per second of the schedule")
    g.add_argument("--max-speed", action="store_true",
                   help="send as fast as possible (event times still follow --rate)")
    g.add_argument("--accounts", type=positive_int, help="distinct accounts")
    g.add_argument("--merchants", type=positive_int, help="distinct merchants")
    g.add_argument("--seed", type=positive_int, help="the random seed (same seed, same traffic)")
    g.add_argument("--start-ms", type=positive_int,
                   help="event time of the first transaction (default: now, to the minute)")
    g.add_argument("--spike", type=spike, action="append", default=[],
                   metavar="FACTORx:DURATIONs@STARTs", help="e.g. 10x:10s@30s (repeatable)")
    g.add_argument("--out-of-order-ms", type=positive_int,
                   help="how far an out-of-order record's event time goes back")
    for name in ("out-of-order", "duplicate", "conflicting-duplicate", "late", "malformed",
                 "schema-violation", "invalid-value", "large-amount"):
        g.add_argument(f"--{name}-fraction", type=fraction, metavar="F",
                       help=f"the fraction of {name.replace('-', ' ')} records (0..1)")
    g.add_argument("--late-by-ms", type=positive_int,
                   help="how far behind the watermark a late record's event time is")
    g.add_argument("--late-after", type=positive_int, metavar="N",
                   help="no late record among the first N (default 1000)")
    g.add_argument("--manifest", metavar="FILE",
                   help="write every record sent, its category, partition and offset (JSONL)")


def cmd_generate(cfg: Config, args) -> int:
    opts = generator_options(cfg, vars(args))
    kafka_admin.require_broker(cfg)
    report = send(kafka_clients.librdkafka_config(cfg, "generator"), opts,
                  max_speed=args.max_speed, manifest=args.manifest)
    print(report.summary())
    if args.manifest:
        print(f"manifest: {args.manifest}")
    return 0


def cmd_soak(cfg: Config, args) -> int:
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
        bad = [k for k in kinds if k not in KINDS] or ([] if kinds else [args.kinds])
        if bad:
            raise UsageError(f"payline soak: argument --kinds: unknown fault kind {bad[0]!r} "
                             f"(known: {', '.join(KINDS)})")
        changes["kinds"] = kinds
    cfg = cfg.replace(soak=dataclasses.replace(cfg.soak, **changes))
    summary = runner.run(cfg, passed_on(args))
    return 0 if summary["ok"] else 1
