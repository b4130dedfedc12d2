"""Which phase a long command is in and what it waits for, on one status line of a terminal.

Off unless the operator tool turns it on (``show_on``), which it does only when stderr is a
terminal: piped output and logs stay quiet, and jobs run by Flink or spark-submit never print
it. The line is rewritten in place and erased when the command ends, so it never mixes with the
command's own output lines.
"""

from __future__ import annotations

import time
from typing import TextIO

_state: dict = {"stream": None, "phase": "", "started": 0.0, "shown": False}


def show_on(stream: TextIO) -> None:
    _state.update(stream=stream, started=time.monotonic())


class Guarded:
    """A text stream that erases the progress line before anything is written to it, so
    that the command's own lines (on the same terminal) never run into it."""

    def __init__(self, inner: TextIO):
        self.inner = inner

    def write(self, text: str) -> int:
        clear()
        return self.inner.write(text)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def phase(text: str) -> None:
    """The command moved on to ``text`` (e.g. "starting the Kafka broker")."""
    _state["phase"] = text
    _draw(text)


def waiting(what: str, since: float) -> None:
    """The current phase waits for ``what`` since ``since`` (time.monotonic())."""
    if _state["stream"] is not None:
        _draw(f"{_state['phase']}: waiting for {what} ({time.monotonic() - since:.0f} s)")


def step(done: int, total: int, what: str) -> None:
    """``done`` of ``total`` steps of the current phase, the next being ``what``."""
    if _state["stream"] is not None:
        _draw(f"{_state['phase']} [{done}/{total}] {what}")


def clear() -> None:
    stream = _state["stream"]
    if stream is not None and _state["shown"]:
        stream.write("\r\x1b[K")
        stream.flush()
        _state["shown"] = False


def _draw(text: str) -> None:
    stream = _state["stream"]
    if stream is None:
        return
    elapsed = time.monotonic() - _state["started"]
    stream.write(f"\r\x1b[K[{elapsed:4.0f} s] {text}"[:200])
    stream.flush()
    _state["shown"] = True
