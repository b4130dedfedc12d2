"""What every command's parser shares: one-line argument errors, a description and examples
in every ``--help``, ``--conf``/``--set``/``--json`` accepted after the subcommand too, the
argument types, and the ``--conf``/``--set`` of this call handed on to a process started on its
behalf."""

from __future__ import annotations

import argparse
import json

from payline.generator.plan import Spike
from runtime.config import ConfigError, overlay_file, parse_address
from runtime.errors import UsageError


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line, without the usage block."""

    def error(self, message: str):  # noqa: D401
        raise UsageError(f"{self.prog}: {message}")


def command(sub, name: str, summary: str, description: str, examples: list[str],
            json_output: bool = False) -> Parser:
    """A subcommand with its one-line summary (in ``payline --help``), a description and
    examples (in ``payline NAME --help``), and the configuration options, which are accepted
    after the subcommand as well as before it. ``json_output``: the command takes ``--json``
    (its result as one JSON document on stdout, for scripts)."""
    p = sub.add_parser(name, help=summary, description=description,
                       epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    # other dests than the top level's: a subparser's defaults would overwrite its values
    p.add_argument("--conf", dest="sub_conf", metavar="FILE", default=None,
                   help="a TOML overlay merged over the defaults (also before the command)")
    p.add_argument("--set", dest="sub_set", metavar="SECTION.KEY=VALUE", action="append",
                   default=[], help="override one configuration value (repeatable; also "
                                    "before the command)")
    if json_output:
        p.add_argument("--json", action="store_true",
                       help="print the result as one JSON document (for scripts)")
    return p


def merge_config_options(args: argparse.Namespace) -> None:
    """``--conf``/``--set`` given after the subcommand join those given before it: one
    overlay file at most, the overrides in the order given."""
    if args.sub_conf is not None:
        if args.conf is not None and args.conf != args.sub_conf:
            raise UsageError(f"payline {args.command}: --conf given twice "
                             f"({args.conf}, {args.sub_conf})")
        args.conf = args.sub_conf
    args.set = [*args.set, *args.sub_set]


def print_json(result: dict | list) -> None:
    """A command's result as one JSON document on stdout (``--json``)."""
    print(json.dumps(result, indent=2, sort_keys=True, default=str))


def emit(args: argparse.Namespace, result: dict | list, line: str) -> None:
    """The command's result: one JSON document with ``--json``, else its line for a person."""
    if getattr(args, "json", False):
        print_json(result)
    else:
        print(line)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def spike(text: str) -> Spike:
    try:
        return Spike.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--spike: ")) from None


def jobmanager(text: str) -> str:
    try:
        return parse_address("--jobmanager", text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("conf: --jobmanager ")) from None


def add_remote(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jobmanager", metavar="HOST:PORT", type=jobmanager, default=None,
                        help="the REST address of a remote Flink cluster's JobManager "
                             "(default: flink.jobmanager, '' = the local cluster)")


def passed_on(args: argparse.Namespace) -> list[str]:
    """The --conf/--set of this call, for a process started on its behalf (a job, the
    archiver): it reads the same configuration. The overlay goes by name whichever way this
    call found it (--conf, $PAYLINE_CONF, ./payline.toml): a release's client runs in its own
    tree, where ./payline.toml is not this project's."""
    overlay = overlay_file(args.conf)
    out = ["--conf", str(overlay.resolve())] if overlay else []
    for item in args.set:
        out += ["--set", item]
    return out
