"""jobs.batch.reconcile.groups_across_batches: the runs the batch replay hands to the rules."""

import pandas as pd

from jobs.batch.reconcile import groups_across_batches


def frame(rows):
    return pd.DataFrame(rows, columns=["account_id", "amount_cents", "txn_id"])


def test_a_run_spanning_batches_is_one_group_with_rows_in_order():
    frames = [frame([("a", 1, "t1"), ("a", 2, "t2")]),
              frame([("a", 3, "t3"), ("b", 4, "t4")]),
              frame([("b", 5, "t5")]),
              frame([]),
              frame([("c", 6, "t6")])]
    groups = list(groups_across_batches(frames, "account_id"))
    assert [(k, [r["txn_id"] for r in rows]) for k, rows in groups] == [
        ("a", ["t1", "t2", "t3"]), ("b", ["t4", "t5"]), ("c", ["t6"])]
    first = groups[0][1][0]
    assert first == {"account_id": "a", "amount_cents": 1, "txn_id": "t1"}
    # plain Python ints, not numpy scalars: the rules' state goes to JSON
    assert type(first["amount_cents"]) is int


def test_no_frames_no_groups():
    assert list(groups_across_batches([], "account_id")) == []
    assert list(groups_across_batches([frame([])], "account_id")) == []
