"""`payline schedule`: reconcile each closed interval once, catching up what was missed.

An interval [start, start + every) is due once ``now >= end + batch.schedule_grace_ms`` (the
stream's allowed lateness is inside that grace, and its last checkpoint has committed). The
intervals done are kept in ``<data_dir>/reconciliation/schedule.json``, so after a stop the
next run catches up every interval it missed, oldest first. A lock file in the run dir
(``flock``) keeps two schedulers from running at once.

In production the same runs come from cron or an orchestrator, one interval per run:

    SPARK_HOME=.venv/lib/python3.11/site-packages/pyspark PYSPARK_PYTHON=.venv/bin/python \\
    .venv/lib/python3.11/site-packages/pyspark/bin/spark-submit --master yarn \\
        --py-files payline-src.zip jobs/batch/reconcile.py --start <start> --end <end>

or ``payline schedule --every 5m --once`` from cron every 5 minutes (it runs what is due,
catches up, and exits).
"""

from __future__ import annotations

import fcntl
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from payline.errors import ScheduleError
from runtime.times import interval


def parse_every(text: str, window_ms: int) -> int:
    """'5m', '300s', '1h' -> ms; a whole number of windows."""
    m = re.fullmatch(r"(\d+)([smh])", text.strip())
    if not m or int(m.group(1)) == 0:
        raise ScheduleError(f"--every: expected a duration like 5m, 300s or 1h, got {text!r}")
    ms = int(m.group(1)) * {"s": 1000, "m": 60_000, "h": 3_600_000}[m.group(2)]
    if ms % window_ms:
        raise ScheduleError(f"--every: must be a whole number of windows "
                            f"(event_time.window_ms = {window_ms}), got {text!r}")
    return ms


def due_intervals(next_start: int, every_ms: int, now_ms: int,
                  grace_ms: int) -> list[tuple[int, int]]:
    """Every interval from ``next_start`` on whose end is at least ``grace_ms`` in the past."""
    out = []
    start = next_start
    while start + every_ms + grace_ms <= now_ms:
        out.append((start, start + every_ms))
        start += every_ms
    return out


class State:
    """The record of intervals done (JSON, replaced atomically)."""

    def __init__(self, path: Path):
        self.path = path
        self.data = json.loads(path.read_text()) if path.exists() else {"done": []}

    @property
    def next_start(self) -> int | None:
        return self.data["done"][-1]["end_ms"] if self.data["done"] else None

    def record(self, start: int, end: int, code: int, now_ms: int) -> None:
        self.data["done"].append({"start_ms": start, "end_ms": end, "exit_code": code,
                                  "finished_at_ms": now_ms})
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1) + "\n")
        tmp.replace(self.path)


def run(lock_path: Path, state_path: Path, every_ms: int, grace_ms: int,
        reconcile: Callable[[int, int], int], *, once: bool,
        clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
        log=print) -> int:
    """The scheduler loop; ``reconcile(start, end)`` returns the run's exit code."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    state_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ScheduleError(f"another scheduler holds {lock_path}") from None
        state = State(state_path)
        worst = 0
        while True:
            now = int(clock() * 1000)
            start = state.next_start
            if start is None:  # first run: the last closed interval
                start = (now - grace_ms) // every_ms * every_ms - every_ms
            for s, e in due_intervals(start, every_ms, now, grace_ms):
                log(f"schedule: reconciling {interval(s, e)}")
                code = reconcile(s, e)
                state.record(s, e, code, int(clock() * 1000))
                worst = max(worst, code)
            if once:
                return worst
            next_due = (state.next_start or start) + every_ms + grace_ms
            sleep(max(1.0, (next_due - int(clock() * 1000)) / 1000))
