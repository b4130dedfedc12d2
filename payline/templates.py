"""The stack's configuration files, rendered from the templates in ``conf/`` (a checkout's,
or the wheel's copies: :mod:`payline.assets`) with ``string.Template`` (``$name``
placeholders)."""

from __future__ import annotations

import string
from pathlib import Path


def render(template: Path, dest: Path, values: dict) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = string.Template(template.read_text()).substitute(
        {k: str(v) for k, v in values.items()}
    )
    dest.write_text(text)
