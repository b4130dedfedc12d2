"""payline: operate the payments pipeline.

    payline [--conf FILE] [--set section.key=value ...] COMMAND [options]

One module per command group registers its subcommands (:mod:`.stack_cmds`, :mod:`.job_cmds`,
:mod:`.batch_cmds`, :mod:`.traffic_cmds`, :mod:`.demo`); each subcommand names the function
that runs it. A user error (bad argument, bad configuration value) exits 2 with one line
naming it; a part of the stack that does not start, or an operation that fails, exits 1 with
one line saying what and where its log is (the table: :mod:`.errors`).
"""

from __future__ import annotations

import sys

from payline.cli import batch_cmds, demo, job_cmds, stack_cmds, traffic_cmds
from payline.cli.args import Parser
from payline.cli.errors import exit_code, message
from runtime import config
from runtime.errors import PaylineError

COMMAND_GROUPS = (stack_cmds, job_cmds, batch_cmds, traffic_cmds, demo)


def build_parser() -> Parser:
    p = Parser(prog="payline", description="Operate the payline payments pipeline.")
    p.add_argument("--conf", metavar="FILE", help="a TOML overlay merged over conf/payline.toml")
    p.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[],
                   help="override one configuration value (repeatable)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for group in COMMAND_GROUPS:
        group.register(sub)
    p.commands = sorted(sub.choices)
    return p


def command_names() -> list[str]:
    """Every subcommand, sorted."""
    return build_parser().commands


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    command = None
    try:
        args = parser.parse_args(argv)
        command = args.command
        overrides = list(args.set)
        if getattr(args, "jobmanager", None) is not None:
            overrides.append(f"flink.jobmanager={args.jobmanager}")
        cfg = config.load(args.conf, overrides)
        return args.run(cfg, args)
    except PaylineError as exc:
        print(message(exc, command), file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        print("payline: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `payline status | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
