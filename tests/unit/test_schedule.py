"""payline.schedule: due intervals, catch-up after a stop, one scheduler at a time."""

import fcntl

import pytest

from payline import schedule
from payline.cli import main
from payline.errors import ScheduleError

M = 60_000


def test_every_parses_whole_windows_and_names_the_argument():
    assert schedule.parse_every("5m", M) == 5 * M
    assert schedule.parse_every("1h", M) == 60 * M
    with pytest.raises(ScheduleError, match="--every: expected a duration"):
        schedule.parse_every("often", M)
    with pytest.raises(ScheduleError, match="--every: must be a whole number"):
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
        with pytest.raises(ScheduleError, match="another scheduler holds"):
            schedule.run(lock, tmp_path / "state.json", 5 * M, M, lambda s, e: 0, once=True)


def test_payline_schedule_rejects_a_bad_every_in_one_line(capsys):
    assert main(["schedule", "--every", "90s", "--once"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("payline schedule: --every: must be a whole number") and "\n" not in err


def test_the_loop_sleeps_until_the_next_interval_is_due_and_runs_it(tmp_path):
    """Loop mode (no --once): after each pass it sleeps until the next interval's end plus the
    grace, then reconciles exactly that interval; the lock is held all along."""
    clock = [10 * 5 * M / 1000 + 30]  # seconds: 30 s after an interval's end, within grace
    runs, sleeps = [], []

    class Stop(Exception):
        pass

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise Stop
        clock[0] += seconds

    def reconcile(start, end):
        runs.append((start, end))
        return 0

    with pytest.raises(Stop):
        schedule.run(tmp_path / "lock", tmp_path / "state.json", 5 * M, M, reconcile,
                     once=False, clock=lambda: clock[0], sleep=sleep, log=lambda _: None)
    # first pass: the last interval closed more than the grace ago; then one interval per wake
    assert runs == [(8 * 5 * M, 9 * 5 * M), (9 * 5 * M, 10 * 5 * M), (10 * 5 * M, 11 * 5 * M)]
    # due at end + grace: 10 * 5 min + 1 min, woken at 10 * 5 min + 30 s -> 30 s; then 5 min
    assert sleeps == [30.0, 300.0, 300.0]
    assert schedule.State(tmp_path / "state.json").next_start == 11 * 5 * M
