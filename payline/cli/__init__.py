"""payline: operate the payments pipeline.

    payline [--conf FILE] [--set section.key=value ...] COMMAND [options]

One module per command group registers its subcommands (:mod:`.stack_cmds`, :mod:`.job_cmds`,
:mod:`.batch_cmds`, :mod:`.traffic_cmds`, :mod:`.demo`); each subcommand names the function
that runs it and returns the exit code of its checks. Errors become one line and an exit code
from one table (:mod:`.errors`): 2 for a wrong call, 3 when the command could not run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
import traceback

from payline.cli import batch_cmds, demo, init_cmd, job_cmds, stack_cmds, traffic_cmds
from payline.cli.args import Parser, merge_config_options
from payline.cli.errors import COULD_NOT_RUN, EXIT_CODES_HELP, exit_code, message
from runtime import config, progress
from runtime.errors import PaylineError

COMMAND_GROUPS = (init_cmd, stack_cmds, job_cmds, batch_cmds, traffic_cmds, demo)


def version() -> str:
    try:
        return importlib.metadata.version("payline")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return "unknown"


def build_parser() -> Parser:
    p = Parser(prog="payline", description="Operate the payline payments pipeline: the local "
               "stack, the streaming jobs on Flink,\nthe batch reconciliation on Spark.",
               epilog=EXIT_CODES_HELP + "\n\n`payline COMMAND --help` shows a command's "
               "options and examples.", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"payline {version()}")
    p.add_argument("--conf", metavar="FILE",
                   help="a TOML overlay merged over the defaults (default: $PAYLINE_CONF)")
    p.add_argument("--set", metavar="SECTION.KEY=VALUE", action="append", default=[],
                   help="override one configuration value (repeatable)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for group in COMMAND_GROUPS:
        group.register(sub)
    p.subcommands = dict(sub.choices)
    return p


def command_names() -> list[str]:
    """Every subcommand, sorted."""
    return sorted(build_parser().subcommands)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    command = None
    try:
        args = parser.parse_args(argv)
        command = args.command
        merge_config_options(args)
        overrides = list(args.set)
        if getattr(args, "jobmanager", None) is not None:
            overrides.append(f"flink.jobmanager={args.jobmanager}")
        # `init` writes the configuration: one that does not load must not stop it
        cfg = config.load(args.conf, overrides) if getattr(args, "needs_config", True) \
            else None
        # on a terminal, long commands say which phase they are in; piped output stays quiet
        if sys.stderr.isatty() and not getattr(args, "json", False):
            progress.show_on(sys.stderr)
            sys.stdout = progress.Guarded(sys.stdout)
        return args.run(cfg, args)
    except PaylineError as exc:
        progress.clear()
        print(message(exc, command), file=sys.stderr)
        return exit_code(exc)
    except KeyboardInterrupt:
        progress.clear()
        print("payline: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `payline status | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except Exception as exc:  # noqa: BLE001 - a bug: its traceback, and "could not run"
        progress.clear()
        traceback.print_exc()
        print(f"{'payline ' + command if command else 'payline'}: crashed: "
              f"{type(exc).__name__}: {exc} (the traceback above; exit {COULD_NOT_RUN})",
              file=sys.stderr)
        return COULD_NOT_RUN
    finally:
        progress.clear()
        if isinstance(sys.stdout, progress.Guarded):
            sys.stdout = sys.stdout.inner


if __name__ == "__main__":
    sys.exit(main())
