"""The real local stack for integration tests: its own ports, run dir and checkpoints, so it
never collides with a developer's `payline up` on the default ports. Helpers live in
tests/support."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from jobs.batch import reconcile
from runtime import config
from tests.support.stack import ROOT, cluster_state, payline
from tests.support.stacks import stack_toml


@pytest.fixture(scope="session")
def stack_conf() -> Path:
    """A fresh run dir (default run/test-stack, kept after the run for its logs)."""
    base = Path(os.environ.get("PAYLINE_TEST_RUN_DIR") or ROOT / "run" / "test-stack")
    conf = base / "test-stack.toml"
    if conf.exists():  # a previous run's stack: stop it by pid before wiping its data
        payline(conf, "down", check=False)
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    conf.write_text(stack_toml(base, kafka=19092, rest=18081, rpc=16123, prometheus=19249,
                               checkpoint_ms=2000))
    yield conf
    # whichever module started the stack last, nothing of it outlives the session
    payline(conf, "down", check=False)


@pytest.fixture(scope="session")
def stack_cfg(stack_conf) -> config.Config:
    return config.load(stack_conf)


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for every Spark test of the session."""
    session = reconcile.spark_session("local[2]", "payline-tests")
    yield session
    session.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test that used the session's stack reports the Flink cluster's state as it was
    (TaskManagers, slots, jobs and why they failed): a timeout alone says nothing of a job
    that crash-looped or never got a slot."""
    report = yield
    cfg = item.funcargs.get("stack_cfg") if hasattr(item, "funcargs") else None
    if report.failed and cfg is not None:
        report.sections.append(("flink", cluster_state(cfg)))
    return report
