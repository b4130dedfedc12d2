"""The one base class of the product's errors.

Every error meant for a person (a bad argument, a bad configuration value, a part of the stack
that did not start, an operation that failed) derives from :class:`PaylineError`, and
``str(error)`` is its one-line message. The operator tool maps each class to an exit code in
one table (``payline.cli.errors``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PaylineError(Exception):
    """An error with a one-line message for the operator."""


class UsageError(PaylineError, ValueError):
    """A bad command-line argument; the message names it."""
