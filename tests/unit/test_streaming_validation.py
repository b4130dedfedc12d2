"""The transactions job's vectorised validation (jobs.streaming.txn_sql.validate_transactions)
gives, row for row, what the per-record function (ValidateTransaction) gives, after the same
pandas-to-Arrow conversion Flink's Python worker applies to a vectorised function's result."""

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from pyflink.table.types import create_arrow_schema
from pyflink.table.utils import pandas_to_arrow

from jobs.streaming.txn_sql import (
    SOURCE_WATERMARK,
    VALIDATED_FIELDS,
    ValidateTransaction,
    validate_transactions,
)
from tests.support.records import GOOD, enc
from udfs import contract

NAMES = [n for n, _ in VALIDATED_FIELDS]


def through_flink(values: list, rules: contract.Rules, watermarks=None) -> list[tuple]:
    """The vectorised function's rows as the JVM receives them (its result DataFrame through
    pyflink's own pandas_to_arrow, as the Python worker sends it); the passed-through watermark
    is left out unless ``watermarks`` are given, then it is the last field."""
    from pyflink.table import DataTypes

    row_type = DataTypes.ROW([*(DataTypes.FIELD(n, t) for n, t in VALIDATED_FIELDS),
                              DataTypes.FIELD(SOURCE_WATERMARK, DataTypes.TIMESTAMP(3))])
    given = pd.Series(watermarks if watermarks is not None else [None] * len(values),
                      dtype="datetime64[ns]", index=range(7, 7 + len(values)))
    frame = validate_transactions(rules)(pd.Series(values, dtype=object), given)
    batch = pandas_to_arrow(create_arrow_schema(["f0"], [row_type]), "UTC", [row_type], [frame])
    names = NAMES + [SOURCE_WATERMARK] if watermarks is not None else NAMES
    return [tuple(r[n] for n in names) for r in batch.column(0).to_pylist()]


def per_record(values: list, rules: contract.Rules) -> list[tuple]:
    f = ValidateTransaction(rules)
    return [tuple(f.eval(v)) for v in values]


records = st.one_of(
    st.fixed_dictionaries({
        "txn_id": st.sampled_from(["t-1", "t-2", "x" * 65, ""]),
        "amount_cents": st.integers(-1, 10**12 + 1) | st.sampled_from([1.5, True, "100"]),
        "currency": st.sampled_from(["USD", "EUR", "XXX"]),
        "event_time_ms": st.integers(946684799999, 946684800001) | st.just(1767225600000),
    }).map(lambda d: enc({**GOOD, **d})),
    st.binary(max_size=30), st.none(), st.just(b"\xff\xfe{}"), st.just(b"[1,2]"),
    st.just(enc(GOOD)))


@settings(max_examples=150, deadline=None)
@given(st.lists(records, max_size=25))
def test_vectorised_validation_is_the_per_record_validation_row_for_row(values):
    rules = contract.Rules()
    assert through_flink(values, rules) == per_record(values, rules)


def test_integers_above_2_to_the_53_survive_a_batch_with_invalid_rows():
    # a column with nulls goes through pandas; as float64 it would round these amounts
    rules = contract.Rules(max_amount_cents=10**18)
    values = [enc({**GOOD, "txn_id": f"t-{a}", "amount_cents": a})
              for a in (2**53 + 1, 2**53 + 3, 10**18 - 1)] + [b"not json", None]
    got = through_flink(values, rules)
    assert [r[NAMES.index("amount_cents")] for r in got] == [2**53 + 1, 2**53 + 3, 10**18 - 1,
                                                             None, None]
    assert got == per_record(values, rules)


def test_an_invalid_record_keeps_its_raw_bytes_as_dlq_text():
    got = through_flink([b"\xff{", b"{", enc(GOOD)], contract.Rules())
    assert [(r[0], r[2], r[3]) for r in got] == [
        (contract.MALFORMED, "/3s=", "base64"), (contract.MALFORMED, "{", "utf8"),
        (None, None, None)]


def test_the_source_watermark_comes_back_unchanged_row_for_row():
    # the job judges lateness against it (jobs/streaming/txn_sql.create_routed_view); the
    # Series handed in need not be indexed from 0
    import datetime

    stamps = [datetime.datetime(2026, 1, 1, 0, 0, 0, 123000), None,
              datetime.datetime(2000, 1, 1, 0, 0, 0, 1000)]
    got = through_flink([enc(GOOD), b"{", enc(GOOD)], contract.Rules(), stamps)
    assert [r[-1] for r in got] == stamps
