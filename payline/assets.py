"""Where the files the local stack is made from are, besides Python code: the broker's and
Flink's configuration templates (``conf/kafka``, ``conf/flink``), the Maven poms of their jars
(``infra/kafka``, ``infra/flink``) and the Java sources of the project's Flink functions
(``infra/flink-udfs/src``).

A checkout's own files are used in place. An installed wheel carries copies of them under
``payline/share/``, in the same layout; setup.py copies them there when it builds the wheel,
so the checkout's files stay the only ones to edit.
"""

from __future__ import annotations

from pathlib import Path

from runtime.config import CHECKOUT

SHIPPED = Path(__file__).resolve().parent / "share"
# a checkout, or the wheel's copies
ASSETS = CHECKOUT or SHIPPED


def asset(relative: str | Path) -> Path:
    """A file or folder of the stack's assets, by its path in a checkout
    (``"conf/kafka/server.properties"``)."""
    return ASSETS / relative
