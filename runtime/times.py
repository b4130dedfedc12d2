"""Times and durations as people read them: ISO 8601 UTC instead of epoch milliseconds, in
output lines, in folder names, and in reports; a long duration in days and hours, not seconds."""

from __future__ import annotations

from datetime import UTC, datetime


def iso(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC to the second: ``2026-12-01T10:05:00Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_for_path(ms: int) -> str:
    """:func:`iso` without colons, for a folder name that every file system and URL takes:
    ``2026-12-01T10-05-00Z``."""
    return iso(ms).replace(":", "-")


def from_path(text: str) -> int:
    """The epoch ms of an :func:`iso_for_path` name (or of plain epoch ms digits, as folders
    written before the names were ISO times are)."""
    if text.isdigit():
        return int(text)
    return int(datetime.strptime(text, "%Y-%m-%dT%H-%M-%SZ").replace(tzinfo=UTC).timestamp()
               * 1000)


def interval_for_path(start_ms: int, end_ms: int) -> str:
    """``2026-12-01T10-00-00Z_2026-12-01T10-05-00Z``: an interval as a folder or file name."""
    return f"{iso_for_path(start_ms)}_{iso_for_path(end_ms)}"


def interval(start_ms: int, end_ms: int) -> str:
    """A half-open interval: ``[2026-12-01T10:00:00Z, 2026-12-01T10:05:00Z)``."""
    return f"[{iso(start_ms)}, {iso(end_ms)})"


def duration(seconds: float) -> str:
    """``12.3 s``, ``4 min 05 s``, ``3 h 12 min``, ``334 d 18 h``: two units at most."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 86_400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86_400} d {s % 86_400 // 3600} h"
