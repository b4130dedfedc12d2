"""The operator tool's errors, each a :class:`runtime.errors.PaylineError` whose message is one
line for the operator (the CLI's exit code for each: ``payline.cli.errors``)."""

from __future__ import annotations

from runtime.errors import PaylineError


class StackError(PaylineError):
    """A part of the local stack did not start or stop; the message names it and its log."""


class FlinkError(PaylineError):
    """The JobManager's REST API answered a request with an error."""


class FlinkUnreachable(FlinkError):
    """No REST API answers at the JobManager's address."""


class KafkaUnreachable(PaylineError):
    """No broker answers at the bootstrap address."""


class TopicReadError(PaylineError):
    """A topic could not be read to its end in time; the message names the topic."""


class OpsError(PaylineError):
    """A release, deployment, savepoint, upgrade or rollback failed."""


class SendError(PaylineError):
    """The generator could not deliver its records."""


class ScheduleError(PaylineError):
    """The scheduler cannot run as asked."""


class SoakError(PaylineError):
    """The soak could not run as configured; the message says why."""
