"""What every command's parser shares: one-line argument errors, the argument types, and the
``--conf``/``--set`` of this call handed on to a process started on its behalf."""

from __future__ import annotations

import argparse
from pathlib import Path

from payline.generator.plan import Spike
from runtime.config import ConfigError, parse_address
from runtime.errors import UsageError


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line, without the usage block."""

    def error(self, message: str):  # noqa: D401
        raise UsageError(f"{self.prog}: {message}")


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
    archiver): it reads the same configuration."""
    out = ["--conf", str(Path(args.conf).resolve())] if args.conf else []
    for item in args.set:
        out += ["--set", item]
    return out
