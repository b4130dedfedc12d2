"""The one table from error class to exit code, and the one-line message of an error.

Every error meant for the operator is a :class:`runtime.errors.PaylineError`; the most specific
class listed first wins. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from payline.errors import ScheduleError
from runtime.config import ConfigError
from runtime.errors import PaylineError, UsageError

# 2: the call itself is wrong (an argument, a configuration value); 1: it could not be done
EXIT_CODES: tuple[tuple[type[PaylineError], int], ...] = (
    (UsageError, 2),
    (ConfigError, 2),
    (ScheduleError, 2),
    (PaylineError, 1),
)


def exit_code(exc: PaylineError) -> int:
    return next(code for cls, code in EXIT_CODES if isinstance(exc, cls))


def message(exc: PaylineError, command: str | None) -> str:
    """One line: the error's own text when it already names its source (``payline ...``,
    ``conf: ...``, ``--set: ...``), else prefixed with the command."""
    text = str(exc)
    if text.startswith(("payline", "conf:", "--set")):
        return text
    return f"payline {command}: {text}" if command else f"payline: {text}"
