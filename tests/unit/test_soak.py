"""The chaos soak's pure parts: the fault plan, the loss and duplication counts, the table, and
the read-only checkpoint directory (the soak itself runs in tests/e2e)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payline.errors import SoakError
from payline.local import archiver_proc
from payline.soak import checks, readonly, runner
from payline.soak import plan as soak_plan
from runtime import config


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10**6), count=st.integers(0, 40),
       kinds=st.lists(st.sampled_from(soak_plan.KINDS), min_size=1, unique=True))
def test_fault_plan_is_seeded_ordered_and_rolls_back_only_upgrades(seed, count, kinds):
    kinds = tuple(kinds)
    if "rollback" in kinds and "upgrade" not in kinds:
        kinds = (*kinds, "upgrade")
    plan = soak_plan.plan_faults(seed, count, kinds, 900, 60, 60)
    assert plan == soak_plan.plan_faults(seed, count, kinds, 900, 60, 60)
    assert len(plan) == count
    assert [p.at_s for p in plan] == sorted(p.at_s for p in plan)
    assert all(60 <= p.at_s <= 840 for p in plan)
    assert {p.kind for p in plan} <= set(kinds)
    if count >= len(kinds) and not ({"rollback"} & set(kinds)):
        assert {p.kind for p in plan} == set(kinds)  # every kind at least once
    pending = 0
    for p in plan:
        if p.kind == "rollback":
            assert pending > 0, "a rollback without an upgrade before it"
            pending -= 1
        elif p.kind == "upgrade":
            pending += 1


def test_every_kind_appears_in_the_default_plan():
    cfg = config.load()
    sc = cfg.soak
    plan = soak_plan.plan_faults(sc.seed, sc.faults, sc.kinds, sc.duration_s, sc.warmup_s,
                            sc.cooldown_s)
    counts = Counter(p.kind for p in plan)
    assert set(counts) == set(soak_plan.KINDS)
    assert sum(counts.values()) == sc.faults >= 10


def test_a_different_seed_gives_a_different_plan():
    kinds = soak_plan.KINDS
    assert (soak_plan.plan_faults(1, 12, kinds, 900, 60, 60)
            != soak_plan.plan_faults(2, 12, kinds, 900, 60, 60))


def test_bad_plans_name_the_key():
    with pytest.raises(config.ConfigError, match="soak.kinds: unknown fault kind 'disk_full'"):
        soak_plan.plan_faults(1, 3, ("taskmanager_kill", "disk_full"), 900, 60, 60)
    with pytest.raises(config.ConfigError, match="soak.kinds: rollback needs upgrade"):
        soak_plan.plan_faults(1, 3, ("rollback",), 900, 60, 60)
    with pytest.raises(config.ConfigError, match="soak.duration_s must exceed"):
        soak_plan.plan_faults(1, 3, ("taskmanager_kill",), 100, 60, 60)


def test_spikes_lie_inside_the_traffic():
    spikes = soak_plan.plan_spikes(7, 3, 10.0, 10, 300)
    assert len(spikes) == 3
    assert all(s.factor == 10.0 and s.duration_s == 10 and 0 <= s.at_s <= 290 for s in spikes)
    assert soak_plan.plan_spikes(7, 0, 10.0, 10, 300) == ()


def _rec(partition, offset, value=None):
    return SimpleNamespace(partition=partition, offset=offset,
                           value=json.dumps(value or {}).encode())


def test_raw_log_comparison_counts_lost_twice_and_extra():
    lake = pa.table({"partition": [0, 0, 0, 1, 1], "offset": [0, 1, 1, 0, 7]})
    expected = {(0, 0), (0, 1), (0, 2), (1, 0)}
    assert checks.compare(lake, expected) == {"expected": 4, "rows": 5, "lost": 1, "extra": 1,
                                             "duplicated": 1}


def test_duplicates_in_exactly_once_outputs_by_the_contracts_identities():
    cfg = config.load()
    t = cfg.topics
    agg = {"account_id": "a", "currency": "EUR", "window_start_ms": 60000, "net_cents": 5}
    committed = {
        t.aggregates: [_rec(0, 0, agg), _rec(1, 4, agg),
                       _rec(0, 1, {**agg, "currency": "USD"})],
        t.dlq: [_rec(0, 0, {"source_topic": t.transactions, "source_partition": 2,
                            "source_offset": 9}),
                _rec(0, 1, {"source_topic": t.transactions, "source_partition": 2,
                            "source_offset": 10})],
        t.late: [_rec(0, 0, {"txn_id": "x"}), _rec(0, 1, {"txn_id": "x"}),
                 _rec(0, 2, {"txn_id": "x"})],
    }
    assert checks.output_duplicates(cfg, committed) == {t.aggregates: 1, t.dlq: 0, t.late: 2}


def _summary(**over):
    s = {"started": "20261125T000000Z", "seed": 7, "duration_s": 900, "rate_per_s": 1200,
         "spikes": [{"factor": 10.0, "duration_s": 10, "at_s": 30.5}],
         "faults": [
             {"kind": "taskmanager_kill", "planned_at_s": 100.0, "injected_at_s": 100.2,
              "recovery_s": 14.3, "outcome": "recovered", "detail": "kill -9"},
             {"kind": "broker_kill", "planned_at_s": 200.0, "injected_at_s": 201.0,
              "recovery_s": None, "outcome": "not recovered", "detail": ""},
             {"kind": "archiver_kill", "planned_at_s": 890.0, "injected_at_s": None,
              "recovery_s": None, "outcome": "not injected: the traffic had ended",
              "detail": ""}],
         "records_in": {"payments.transactions": 1000, "payments.accounts": 10},
         "records_out": {"payments.account-aggregates": 50},
         "raw_log": {"payments.transactions": {"expected": 1000, "rows": 1000, "lost": 0,
                                               "extra": 0, "duplicated": 0}},
         "duplicated_in_outputs": {"payments.account-aggregates": 0},
         "reconciliation": {"interval": [0, 60000], "aggregates": {"MATCH": 50}, "alerts": {},
                            "unexplained": 0, "accounting_holds": True},
         "lost": 0, "duplicated": 0, "ok": False}
    s.update(over)
    return s


def test_the_table_lists_each_fault_and_the_totals():
    table = checks.format_table(_summary())
    assert "| 1 | taskmanager_kill | +100 s | 14.3 s | recovered | kill -9 |" in table
    assert "| 2 | broker_kill | +201 s | - | not recovered |  |" in table
    assert "| 3 | archiver_kill | (+890 s) | - | not injected" in table
    assert "| taskmanager_kill | 1 | 1 | 14.3 s |" in table
    assert "| broker_kill | 1 | 0 | - |" in table
    assert "| archiver_kill | 0 | 0 | - |" in table
    assert table.rstrip().endswith("LOST 0, DUPLICATED 0: FAIL")
    assert checks.format_table(_summary(ok=True)).rstrip().endswith("PASS")


def test_latest_checkpoint_is_the_newest_complete_one(tmp_path):
    cfg = config.load(None, [f"paths.checkpoints_dir={tmp_path}"])
    job = tmp_path / "checkpoints" / "abc"
    for n, complete in ((3, True), (12, True), (13, False)):
        (job / f"chk-{n}").mkdir(parents=True)
        if complete:
            (job / f"chk-{n}" / "_metadata").write_bytes(b"x")
    assert checks.latest_checkpoint(cfg, "abc") == str(job / "chk-12")
    assert checks.latest_checkpoint(cfg, "nothing") is None


def test_the_checkpoint_directory_is_read_only_for_a_while_then_writable(tmp_path):
    d = tmp_path / "checkpoints"
    (d / "chk-1").mkdir(parents=True)
    ro = readonly.ReadOnly(d)
    try:
        ro.start()
    except SoakError as exc:  # root without the right to mount (e.g. a locked container)
        pytest.skip(str(exc))
    try:
        with pytest.raises(OSError):
            (d / "chk-1" / "_metadata").write_bytes(b"x")
        with pytest.raises(OSError):
            (d / "chk-2").mkdir()
    finally:
        ro.stop()
    (d / "chk-1" / "_metadata").write_bytes(b"x")
    (d / "chk-2").mkdir()


@pytest.mark.parametrize("args, message", [
    (["--kinds", "taskmanager_kill,disk_full"],
     "payline soak: argument --kinds: unknown fault kind 'disk_full'"),
    (["--duration", "5"], "payline soak: argument --duration: must be >= 30, got 5"),
    (["--rate", "abc"], "payline soak: argument --rate: expected a whole number, got 'abc'"),
])
def test_soak_refuses_bad_arguments_in_one_line(args, message):
    exe = Path(sys.executable).parent / "payline"
    proc = subprocess.run([str(exe), "soak", *args], capture_output=True, text=True,
                          env={**os.environ, "PAYLINE_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr


def test_the_soak_refuses_a_secure_stack_in_one_line(tmp_path):
    cfg = config.load(None, [f"paths.run_dir={tmp_path}", "security.enabled=true"])
    with pytest.raises(SoakError, match="plaintext stack: security.enabled") as err:
        runner.Soak(cfg, []).prepare()
    assert "\n" not in str(err.value)


def test_a_dead_archiver_fails_the_fault_check_in_one_line(tmp_path, monkeypatch):
    """After any fault the archiver must still run (the full soak once lost it at a broker
    kill without noticing): no recovery is reported while it is dead."""
    cfg = config.load(None, [f"paths.run_dir={tmp_path}"])
    monkeypatch.setattr(archiver_proc, "archiver_pids", lambda _cfg: [])
    s = runner.Soak(cfg, [])
    with pytest.raises(SoakError, match="the archiver is not running after broker_kill"
                       ) as err:
        s.recovered("broker_kill", 0.0, 0.0)
    assert "\n" not in str(err.value)
