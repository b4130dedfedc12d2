"""The test tiers are pytest markers, given by folder: ``unit`` (tests/unit: no JVM, no javac,
no fetched jars, no network), ``integration`` (tests/integration: the real local stack, Spark
in local mode) and ``e2e`` (tests/e2e: the chaos soak on a stack of its own). `make unit` runs
the first; `make test` runs them all."""

from __future__ import annotations

from pathlib import Path

import pytest

TIERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = Path(str(item.fspath)).relative_to(Path(__file__).parent).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
