"""The analyst report's formatting, with hand-written expected values: amounts per currency
(JPY has no minor unit), ISO instants, run and folder names, the drift tile without a baseline,
the cells of the mismatch sample and the window axis trimmed to the windows with traffic."""

from __future__ import annotations

import pytest

from jobs.batch import formats, report, report_data
from runtime import times
from udfs import contract

T0 = 1767225600000  # 2026-01-01T00:00:00Z
W = 60_000
DEC_1_10H = 1796119200000  # 2026-12-01T10:00:00Z: T0 + 334 days + 10 h


@pytest.mark.parametrize("amount, currency, text", [
    (123456, "EUR", "EUR 1,234.56"),
    (1235, "JPY", "JPY 1,235"),
    (5, "USD", "USD 0.05"),
    (0, "GBP", "GBP 0.00"),
    (-40, "EUR", "EUR -0.40"),
    (-1235, "JPY", "JPY -1,235"),
    (1_000_000_000_000, "JPY", "JPY 1,000,000,000,000"),
    (1_000_000_000_000, "CHF", "CHF 10,000,000,000.00"),
])
def test_an_amount_is_shown_in_its_currency_with_its_minor_unit(amount, currency, text):
    assert formats.money(amount, currency) == text


def test_every_contract_currency_but_jpy_has_cents():
    assert {c: formats.money(100, c) for c in contract.DEFAULT_CURRENCIES} == {
        c: ("JPY 100" if c == "JPY" else f"{c} 1.00") for c in contract.DEFAULT_CURRENCIES}
    assert formats.major(123456, "EUR") == 1234.56 and formats.major(1235, "JPY") == 1235


def test_instants_runs_and_folders_are_iso_times():
    assert times.iso(T0) == "2026-01-01T00:00:00Z"
    assert times.iso(DEC_1_10H) == "2026-12-01T10:00:00Z"
    assert formats.run_name(DEC_1_10H, DEC_1_10H + 5 * W) == (
        "2026-12-01T10:00:00Z--2026-12-01T10:05:00Z")
    assert times.interval_for_path(DEC_1_10H, DEC_1_10H + 5 * W) == (
        "2026-12-01T10-00-00Z_2026-12-01T10-05-00Z")
    assert formats.interval_text(T0, T0 + 3_600_000) == (
        "2026-01-01T00:00:00Z → 2026-01-01T01:00:00Z")


def test_no_baseline_is_neutral_not_green():
    assert report.drift_state({"drift": {}, "drift_flags": []}) == (
        "none", "no baseline", "no earlier interval reconciled yet: nothing compared")
    checked = {"rate.late": {"value": 0.1, "threshold": 0.2, "drifted": False}}
    assert report.drift_state({"drift": checked, "drift_flags": []}) == (
        "ok", "none", "against the trailing baseline")
    flagged = {"psi.currency_mix": {"value": 0.4, "threshold": 0.25, "drifted": True},
               "rate.late": {"value": 0.9, "threshold": 0.2, "drifted": True}}
    assert report.drift_state({"drift": flagged,
                               "drift_flags": ["psi.currency_mix", "rate.late"]}) == (
        "warn", "2 flagged", "psi.currency_mix, rate.late")
    assert ".none{border-left:6px solid #9e9e9e" in report.CSS


def test_the_sample_cells_show_amounts_and_the_late_txn_ids():
    side = {"txn_count": 1234, "net_cents": 1060, "max_amount_cents": 900}
    assert report.aggregate_cell(side, "EUR") == "1,234 txns, net EUR 10.60, max EUR 9.00"
    assert report.aggregate_cell(side, "JPY") == "1,234 txns, net JPY 1,060, max JPY 900"
    assert report.aggregate_cell(None, "EUR") == '<span class="note">(none)</span>'
    assert report.late_ids_cell(["t6"]) == "t6"
    assert report.late_ids_cell(None) == ""
    assert report.late_ids_cell([f"t{i}" for i in range(1, 8)]) == (
        "t1, t2, t3, t4, t5 (+2 more)")
    assert report.late_ids_cell(["<b>"]) == "&lt;b&gt;"


def window(start_ms, keys, stream=0, batch=0):
    return {"window_start_ms": start_ms, "keys": keys, "not_match": 0, "unexplained": 0,
            "stream_txn_count": stream, "batch_txn_count": batch, "stream_net_cents": 0,
            "batch_net_cents": 0}


def test_the_window_axis_runs_from_the_first_to_the_last_window_with_traffic():
    zero = dict.fromkeys(report_data.WINDOW_FIGURES, 0)
    got = report_data.windows_with_traffic(
        [window(T0 + 2 * W, 3, 4, 5), window(T0 + 5 * W, 1, 0, 2)], T0, T0 + 10 * W, W)
    assert got == [window(T0 + 2 * W, 3, 4, 5), {"window_start_ms": T0 + 3 * W, **zero},
                   {"window_start_ms": T0 + 4 * W, **zero}, window(T0 + 5 * W, 1, 0, 2)]
    # a window with no key is no traffic; none at all: an empty axis
    assert report_data.windows_with_traffic([window(T0, 0)], T0, T0 + 10 * W, W) == []
    assert report_data.windows_with_traffic([], T0, T0 + 10 * W, W) == []
    # one busy window: the axis is that window alone
    assert report_data.windows_with_traffic([window(T0 + 9 * W, 2, 2, 2)], T0, T0 + 10 * W,
                                            W) == [window(T0 + 9 * W, 2, 2, 2)]
