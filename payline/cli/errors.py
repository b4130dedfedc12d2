"""The one table from error class to exit code, and the one-line message of an error.

Exit codes, for a person and for a scheduler that must tell "found a problem" from "could not
run":

- 0: done, and every check passed;
- 1: done, and a check found a problem (unexplained reconciliation differences, a part down
  under ``status --check``, records lost in a soak): the command's own return value;
- 2: the call is wrong (an argument, a configuration value): nothing was done;
- 3: could not run (an endpoint that does not answer, a part of the stack that did not start,
  an operation that failed, a crash).

Every error meant for the operator is a :class:`runtime.errors.PaylineError`; the most specific
class listed first wins. Anything else is a bug: it keeps its traceback and exits 3.
"""

from __future__ import annotations

from payline.errors import ScheduleError
from runtime.config import ConfigError
from runtime.errors import PaylineError, UsageError

OK, PROBLEM_FOUND, USAGE, COULD_NOT_RUN = 0, 1, 2, 3

EXIT_CODES: tuple[tuple[type[PaylineError], int], ...] = (
    (UsageError, USAGE),
    (ConfigError, USAGE),
    (ScheduleError, USAGE),
    (PaylineError, COULD_NOT_RUN),
)

EXIT_CODES_HELP = """exit codes:
  0  done, every check passed
  1  done, and a check found a problem (e.g. unexplained differences; status --check with a
     part down)
  2  usage or configuration error: nothing was done
  3  could not run: an endpoint does not answer, a part did not start, a crash"""


def exit_code(exc: PaylineError) -> int:
    return next(code for cls, code in EXIT_CODES if isinstance(exc, cls))


def message(exc: PaylineError, command: str | None) -> str:
    """One line, one prefix style: ``payline <command>: <what>``, the error's own text (which
    names its source: ``conf: kafka.port ...``, ``kafka: ...``) after the prefix."""
    text = str(exc)
    if text.startswith("payline"):
        return text
    if not command:
        return f"payline: {text}"
    # an operation's own error already names it ("deploy: no release of fraud ...")
    return f"payline {command}: {text.removeprefix(f'{command}: ')}"
