"""payline.schedule: due intervals, catch-up after a stop, one scheduler at a time."""

import fcntl

import pytest

from payline import schedule
from payline.cli import main

M = 60_000


def test_every_parses_whole_windows_and_names_the_argument():
    assert schedule.parse_every("5m", M) == 5 * M
    assert schedule.parse_every("1h", M) == 60 * M
    with pytest.raises(schedule.ScheduleError, match="--every: expected a duration"):
        schedule.parse_every("often", M)
    with pytest.raises(schedule.ScheduleError, match="--every: must be a whole number"):
        schedule.parse_every("90s", M)


def test_an_interval_is_due_only_once_its_end_is_older_than_the_grace():
    assert schedule.due_intervals(0, 5 * M, 5 * M + 59_999, M) == []
    assert schedule.due_intervals(0, 5 * M, 6 * M, M) == [(0, 5 * M)]


def test_a_scheduler_catches_up_the_intervals_it_missed_and_records_them(tmp_path):
    runs = []
    clock = [10 * 5 * M / 1000]  # seconds

    def reconcile(start, end):
        runs.append((start, end))
        return 0

    args = (tmp_path / "lock", tmp_path / "state.json", 5 * M, M, reconcile)
    assert schedule.run(*args, once=True, clock=lambda: clock[0]) == 0
    first = list(runs)
    assert first == [(8 * 5 * M, 9 * 5 * M)]  # a fresh start: the last closed interval
    clock[0] += 3 * 5 * M / 1000  # down for three intervals
    runs.clear()
    schedule.run(*args, once=True, clock=lambda: clock[0])
    assert runs == [(9 * 5 * M, 10 * 5 * M), (10 * 5 * M, 11 * 5 * M),
                    (11 * 5 * M, 12 * 5 * M)]
    assert schedule.State(tmp_path / "state.json").next_start == 12 * 5 * M


def test_a_failed_interval_is_recorded_with_its_exit_code_and_reported(tmp_path):
    code = schedule.run(tmp_path / "lock", tmp_path / "state.json", 5 * M, M,
                        lambda s, e: 1, once=True, clock=lambda: 100 * M / 1000)
    assert code == 1
    assert schedule.State(tmp_path / "state.json").data["done"][0]["exit_code"] == 1


def test_two_schedulers_never_run_at_once(tmp_path):
    lock = tmp_path / "lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(schedule.ScheduleError, match="another scheduler holds"):
            schedule.run(lock, tmp_path / "state.json", 5 * M, M, lambda s, e: 0, once=True)


def test_payline_schedule_rejects_a_bad_every_in_one_line(capsys):
    assert main(["schedule", "--every", "90s", "--once"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("payline schedule: --every: must be a whole number") and "\n" not in err
