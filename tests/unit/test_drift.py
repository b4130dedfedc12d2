"""jobs/batch/drift.py: a shifted currency mix, invalid rate or amount distribution is flagged,
an unshifted run is not."""

import random

from jobs.batch import drift
from runtime import config

PARAMS = config.load().drift


def metrics(seed: int, eur_share=0.5, invalid_rate=0.002, amount_scale=1.0) -> dict:
    rng = random.Random(seed)
    n = 10_000
    eur = int(n * eur_share * rng.uniform(0.98, 1.02))
    amounts = sorted(rng.lognormvariate(7, 1) * amount_scale for _ in range(2000))
    qs = [amounts[int(q * (len(amounts) - 1))] for q in drift.QUANTILES]
    return {
        "currency_mix": {"EUR": eur, "USD": n - eur},
        "channel_mix": {"web": 5000 + rng.randint(-50, 50), "pos": 5000},
        "country_mix": {"DE": 7000, "FR": 3000 + rng.randint(-30, 30)},
        "amount_quantiles": {"EUR": qs},
        "rates": {"dlq.INVALID_VALUE": invalid_rate * rng.uniform(0.9, 1.1),
                  "duplicate": 0.01, "late": 0.001, "unexplained": 0.0},
    }


HISTORY = [metrics(s) for s in range(5)]


def flagged(current) -> list[str]:
    return sorted(k for k, v in drift.compare(current, HISTORY, PARAMS).items()
                  if v["drifted"])


def test_an_unshifted_run_is_not_flagged():
    assert flagged(metrics(99)) == []


def test_a_shifted_currency_mix_is_flagged_by_psi():
    assert flagged(metrics(99, eur_share=0.9)) == ["psi.currency_mix"]


def test_a_doubled_invalid_rate_is_flagged():
    assert flagged(metrics(99, invalid_rate=0.006)) == ["rate.dlq.INVALID_VALUE"]


def test_shifted_amounts_are_flagged_by_wasserstein():
    assert flagged(metrics(99, amount_scale=1.7)) == ["wasserstein.amount.EUR"]  # 0.23 decades
    assert flagged(metrics(99, amount_scale=100)) == ["wasserstein.amount.EUR"]  # cents as units
    assert flagged(metrics(99, amount_scale=1.45)) == []                        # 0.16 decades


def test_a_currency_with_too_few_transactions_is_not_checked_for_amounts():
    current = metrics(99, amount_scale=100, eur_share=0.0149)  # 149 EUR transactions
    assert not any(k.startswith("wasserstein") for k in
                   drift.compare(current, HISTORY, PARAMS))


def test_no_baseline_no_checks():
    assert drift.compare(metrics(1), [], PARAMS) == {}


def test_psi_is_zero_for_equal_mixes_and_grows_with_the_shift():
    same = drift.psi({"a": 50, "b": 50}, {"a": 5, "b": 5})
    small = drift.psi({"a": 55, "b": 45}, {"a": 50, "b": 50})
    large = drift.psi({"a": 90, "b": 10}, {"a": 50, "b": 50})
    assert same == 0 and 0 < small < 0.1 < 0.25 < large
