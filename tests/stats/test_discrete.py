"""The statistical helpers themselves: calibrated under the null, powerful off it.

A helper that cannot fail is worthless, so each check has its broken twin: exact draws pass,
draws from a shifted distribution fail.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import stats

from stats.discrete import empirical, gtest_pvalue, tv_distance, tv_null_quantile


def geometric_probs(k: int, ratio: float) -> dict[str, float]:
    """A geometric-like law over ``k`` keys: a few heavy keys and a long light tail."""
    w = ratio ** np.arange(k)
    w /= w.sum()
    return {f"k{i}": float(v) for i, v in enumerate(w)}


def shifted(probs: dict[str, float], amount: float) -> dict[str, float]:
    """Move ``amount`` of probability from the most to the second most probable key."""
    ranked = sorted(probs, key=lambda k: -probs[k])
    out = dict(probs)
    out[ranked[0]] -= amount
    out[ranked[1]] += amount
    return out


def draw_counts(probs: dict[str, float], n: int, rng: np.random.Generator) -> dict[str, int]:
    keys = list(probs)
    p = np.array([probs[k] for k in keys])
    return dict(zip(keys, rng.multinomial(n, p / p.sum()).tolist(), strict=True))


LAWS = {
    "uniform-4": {k: 0.25 for k in "abcd"},
    "geometric-200": geometric_probs(200, 0.9),
    "head-and-5000-tail": {"h0": 0.3, "h1": 0.2, **{f"t{i}": 0.5 / 5000 for i in range(5000)}},
}


class TestGTest:
    @pytest.mark.parametrize("law", list(LAWS), ids=list(LAWS))
    def test_exact_draws_pass(self, law: str, rng: np.random.Generator) -> None:
        counts = draw_counts(LAWS[law], 20_000, rng)
        assert gtest_pvalue(counts, LAWS[law]) > 0.001

    @pytest.mark.parametrize("law", list(LAWS), ids=list(LAWS))
    def test_shifted_draws_fail(self, law: str, rng: np.random.Generator) -> None:
        probs = LAWS[law]
        top = max(probs.values())
        counts = draw_counts(shifted(probs, 0.15 * top), 20_000, rng)
        assert gtest_pvalue(counts, probs) < 0.001

    def test_calibrated_under_the_null(self, rng: np.random.Generator) -> None:
        """p-values of exact draws are uniform: P(p < 0.1) ≈ 0.1 (within 4 binomial sd)."""
        probs = LAWS["geometric-200"]
        reps = 400
        pvals = np.array([gtest_pvalue(draw_counts(probs, 2000, rng), probs)
                          for _ in range(reps)])
        frac = float(np.mean(pvals < 0.1))
        assert abs(frac - 0.1) < 4 * np.sqrt(0.1 * 0.9 / reps)
        assert stats.kstest(pvals, "uniform").pvalue > 0.001

    def test_key_of_probability_zero_gives_zero(self) -> None:
        probs = {"a": 0.5, "b": 0.5}
        assert gtest_pvalue({"a": 10, "b": 10, "z": 1}, probs) == 0.0
        assert gtest_pvalue({"a": 10, "b": 10, "z": 0}, probs) == 1.0

    def test_rare_keys_are_merged_into_rest(self, rng: np.random.Generator) -> None:
        """Expected counts < 5 would make χ² invalid: such keys join the rest bucket."""
        probs = {"big": 0.9, **{f"t{i}": 0.1 / 100 for i in range(100)}}
        counts = draw_counts(probs, 200, rng)  # each tail key expects 0.2
        with np.errstate(all="raise"):
            p = gtest_pvalue(counts, probs, top_k=101)
        assert 0.001 < p <= 1.0
        # a single bucket left: nothing to test
        assert gtest_pvalue({"t0": 3}, {f"t{i}": 0.01 for i in range(100)}) == 1.0

    def test_keys_outside_top_k_go_to_rest(self) -> None:
        probs = {"a": 0.4, "b": 0.3, "c": 0.2, "d": 0.1}
        # c and d swapped: invisible to a top-2 test, obvious to a top-4 test
        counts = {"a": 4000, "b": 3000, "c": 1000, "d": 2000}
        assert gtest_pvalue(counts, probs, top_k=2) == pytest.approx(1.0)
        assert gtest_pvalue(counts, probs, top_k=4) < 1e-12

    def test_ess_deflates_the_counts(self, rng: np.random.Generator) -> None:
        probs = LAWS["geometric-200"]
        counts = draw_counts(shifted(probs, 0.02), 20_000, rng)
        strict = gtest_pvalue(counts, probs)
        assert strict < 0.001
        assert gtest_pvalue(counts, probs, ess=20_000) == pytest.approx(strict)
        assert gtest_pvalue(counts, probs, ess=1e9) == pytest.approx(strict)  # never inflates
        assert gtest_pvalue(counts, probs, ess=500) > 0.001

    def test_ess_equals_statistic_scaling(self) -> None:
        """Deflating by s multiplies G by s (two buckets, so df = 1 throughout)."""
        probs = {"a": 0.5, "b": 0.5}
        counts = {"a": 600, "b": 400}
        g_full = stats.chi2.isf(gtest_pvalue(counts, probs), 1)
        g_half = stats.chi2.isf(gtest_pvalue(counts, probs, ess=500), 1)
        assert g_half == pytest.approx(g_full / 2, rel=1e-9)

    @pytest.mark.parametrize(
        ("counts", "probs", "kwargs"),
        [({"a": 1}, {"a": 0.5}, {}),
         ({"a": 1}, {"a": -0.5, "b": 1.5}, {}),
         ({"a": 0}, {"a": 1.0}, {}),
         ({"a": 1}, {"a": 1.0}, {"ess": 0.0}),
         ({"a": 1}, {"a": 1.0}, {"top_k": 0})],
        ids=["probs-not-normalised", "negative-prob", "no-counts", "zero-ess", "zero-top-k"])
    def test_rejects_bad_arguments(self, counts: dict[str, int], probs: dict[str, float],
                                   kwargs: dict[str, float]) -> None:
        with pytest.raises(ValueError):
            gtest_pvalue(counts, probs, **kwargs)  # type: ignore[arg-type]


class TestTotalVariation:
    @pytest.mark.parametrize(
        ("p", "q", "tv"),
        [({"a": 1.0}, {"a": 1.0}, 0.0),
         ({"a": 1.0}, {"b": 1.0}, 1.0),
         ({"a": 0.5, "b": 0.5}, {"a": 0.9, "b": 0.1}, 0.4),
         ({"a": 0.5, "b": 0.5}, {"a": 0.5, "c": 0.5}, 0.5)],
        ids=["equal", "disjoint", "shifted", "missing-keys"])
    def test_known_values(self, p: dict[str, float], q: dict[str, float], tv: float) -> None:
        assert tv_distance(p, q) == pytest.approx(tv)
        assert tv_distance(q, p) == pytest.approx(tv)

    def test_empirical_normalises(self) -> None:
        assert empirical(Counter("aab")) == {"a": 2 / 3, "b": 1 / 3}
        with pytest.raises(ValueError):
            empirical({"a": 0})

    def test_null_quantile_is_a_quantile(self, rng: np.random.Generator) -> None:
        """About 1% of fresh exact samples exceed the 99% quantile (4 binomial sd)."""
        probs = LAWS["geometric-200"]
        n, reps = 5000, 400
        threshold = tv_null_quantile(probs, n, q=0.99, reps=reps, rng=rng)
        exceed = np.mean([tv_distance(empirical(draw_counts(probs, n, rng)), probs) > threshold
                          for _ in range(reps)])
        assert exceed < 0.01 + 4 * np.sqrt(0.01 * 0.99 / reps)

    def test_null_quantile_shrinks_like_one_over_sqrt_n(self, rng: np.random.Generator) -> None:
        probs = LAWS["geometric-200"]
        small = tv_null_quantile(probs, 1000, q=0.5, rng=rng)
        large = tv_null_quantile(probs, 16_000, q=0.5, rng=rng)
        assert large == pytest.approx(small / 4, rel=0.15)

    @pytest.mark.parametrize("law", list(LAWS), ids=list(LAWS))
    def test_exact_passes_shifted_fails(self, law: str, rng: np.random.Generator) -> None:
        probs = LAWS[law]
        n = 20_000
        threshold = tv_null_quantile(probs, n, rng=rng)
        exact = empirical(draw_counts(probs, n, rng))
        assert tv_distance(exact, probs) < threshold
        bad = empirical(draw_counts(shifted(probs, 0.1), n, rng))
        assert tv_distance(bad, probs) > threshold

    def test_null_quantile_rejects_bad_arguments(self, rng: np.random.Generator) -> None:
        with pytest.raises(ValueError):
            tv_null_quantile({"a": 1.0}, 0, rng=rng)
        with pytest.raises(ValueError):
            tv_null_quantile({"a": 1.0}, 10, q=1.0, rng=rng)
