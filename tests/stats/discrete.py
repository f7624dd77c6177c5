"""Goodness-of-fit helpers for samplers of discrete distributions (TESTING.md, P2).

A sampler test draws ``n`` values, counts them, and compares the counts with the exact
(enumerated) distribution:

- :func:`gtest_pvalue`: a G-test (likelihood-ratio χ²) on the ``top_k`` most probable keys
  plus one "rest" bucket. Buckets whose expected count is below 5 are merged into the rest,
  and MCMC draws are deflated to their effective sample size.
- :func:`tv_distance` and :func:`tv_null_quantile`: total variation between the empirical
  and the exact distribution, judged against its own null (the TV of ``n`` iid exact draws),
  because a fixed TV threshold means nothing without the sample size.

Examples
--------
>>> import numpy as np
>>> probs = {"a": 0.5, "b": 0.3, "c": 0.2}
>>> rng = np.random.default_rng(0)
>>> draws = rng.choice(list(probs), size=3000, p=list(probs.values()))
>>> counts = {k: int((draws == k).sum()) for k in probs}
>>> gtest_pvalue(counts, probs) > 0.001
True
>>> tv_distance(empirical(counts), probs) < tv_null_quantile(probs, 3000, rng=rng)
True
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping

import numpy as np
from scipy import stats

__all__ = ["empirical", "gtest_pvalue", "tv_distance", "tv_null_quantile"]

MIN_EXPECTED = 5.0
"""Buckets expected to hold fewer counts than this are merged into the rest bucket."""


def _check_probs(probs: Mapping[Hashable, float]) -> None:
    values = np.fromiter(probs.values(), dtype=float, count=len(probs))
    if values.size == 0 or np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValueError("probs must be a non-empty mapping of finite probabilities >= 0.")
    total = math.fsum(values)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"probs must sum to 1; they sum to {total!r}.")


def empirical(counts: Mapping[Hashable, float]) -> dict[Hashable, float]:
    """The empirical distribution ``counts[k] / Σ counts``.

    Examples
    --------
    >>> empirical({"a": 3, "b": 1})
    {'a': 0.75, 'b': 0.25}
    """
    n = math.fsum(counts.values())
    if not n > 0:
        raise ValueError("counts must contain at least one positive count.")
    return {k: c / n for k, c in counts.items()}


def gtest_pvalue(counts: Mapping[Hashable, float], probs: Mapping[Hashable, float],
                 top_k: int = 30, ess: float | None = None) -> float:
    """p-value of the G-test of ``counts`` against the exact distribution ``probs``.

    The buckets are the ``top_k`` keys of largest probability plus a "rest" bucket holding
    every other key. With ``n = Σ counts`` and ``s = min(ess, n) / n`` (``s = 1`` without
    ``ess``), the observed count of a bucket is ``s · Σ counts`` and its expected count is
    ``s · n · Σ probs`` over its keys. Buckets expected below 5 join the rest; if the rest
    itself is expected below 5 it joins the smallest remaining bucket. Then

        G = 2 Σ_buckets O log(O / E),   p = P(χ²_{B−1} ≥ G)

    for B buckets (p = 1 when fewer than two buckets remain). A key observed but of
    probability zero gives p = 0.

    Parameters
    ----------
    counts : mapping
        How often each key was drawn.
    probs : mapping
        The exact probability of every key of the support (summing to 1).
    top_k : int
        Number of most probable keys that get their own bucket.
    ess : float, optional
        Effective sample size of the draws (MCMC); counts are deflated to it.

    Examples
    --------
    >>> gtest_pvalue({"a": 50, "b": 50}, {"a": 0.5, "b": 0.5})
    1.0
    >>> gtest_pvalue({"a": 90, "b": 10}, {"a": 0.5, "b": 0.5}) < 1e-12
    True
    >>> gtest_pvalue({"c": 1, "a": 99}, {"a": 0.5, "b": 0.5})
    0.0
    """
    _check_probs(probs)
    n = math.fsum(counts.values())
    if not n > 0 or any(c < 0 for c in counts.values()):
        raise ValueError("counts must be >= 0 with at least one positive count.")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1; got {top_k}.")
    if any(c > 0 and not probs.get(k, 0.0) > 0 for k, c in counts.items()):
        return 0.0
    scale = 1.0
    if ess is not None:
        if not ess > 0:
            raise ValueError(f"ess must be > 0; got {ess}.")
        scale = min(float(ess), n) / n
    n_eff = scale * n
    ranked = sorted((k for k in probs if probs[k] > 0), key=lambda k: -probs[k])
    observed: list[float] = []
    expected: list[float] = []
    rest_obs = scale * n
    rest_exp = n_eff
    for k in ranked[:top_k]:
        o, e = scale * counts.get(k, 0), n_eff * probs[k]
        if e < MIN_EXPECTED:
            continue
        rest_obs -= o
        rest_exp -= e
        observed.append(o)
        expected.append(e)
    # the rest: subtracting keeps Σ O = Σ E = n_eff (up to rounding)
    rest_obs, rest_exp = max(rest_obs, 0.0), max(rest_exp, 0.0)
    if rest_exp < MIN_EXPECTED and observed and (rest_exp > 0 or rest_obs > 0):
        j = int(np.argmin(expected))
        observed[j] += rest_obs
        expected[j] += rest_exp
    elif rest_exp > 0 or rest_obs > 0:
        observed.append(rest_obs)
        expected.append(rest_exp)
    if len(observed) < 2:
        return 1.0
    o_arr, e_arr = np.asarray(observed), np.asarray(expected)
    if np.any((e_arr <= 0) & (o_arr > 1e-9)):
        return 0.0
    pos = o_arr > 0
    g = 2.0 * float(np.sum(o_arr[pos] * np.log(o_arr[pos] / e_arr[pos])))
    return float(stats.chi2.sf(max(g, 0.0), len(observed) - 1))


def tv_distance(p: Mapping[Hashable, float], q: Mapping[Hashable, float]) -> float:
    """Total variation ½ Σ_k |p(k) − q(k)| over the union of keys (missing keys are 0).

    Examples
    --------
    >>> tv_distance({"a": 1.0}, {"b": 1.0})
    1.0
    >>> tv_distance({"a": 0.5, "b": 0.5}, {"a": 0.75, "b": 0.25})
    0.25
    """
    keys = set(p) | set(q)
    return 0.5 * math.fsum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys)


def tv_null_quantile(probs: Mapping[Hashable, float], n: int, q: float = 0.99,
                     reps: int = 200, *, rng: np.random.Generator) -> float:
    """The ``q`` quantile of TV(probs, empirical of ``n`` iid draws from probs).

    Each of ``reps`` replications draws multinomial counts of size ``n`` from ``probs`` and
    computes their total variation from ``probs``; a sampler whose empirical TV exceeds the
    returned value is suspect at level ``1 − q``.

    Examples
    --------
    >>> import numpy as np
    >>> t = tv_null_quantile({"a": 0.5, "b": 0.5}, 100, rng=np.random.default_rng(0))
    >>> 0.05 < t < 0.2
    True
    """
    _check_probs(probs)
    if n < 1 or reps < 1 or not 0 < q < 1:
        raise ValueError(f"need n >= 1, reps >= 1 and 0 < q < 1; got {n}, {reps}, {q}.")
    p = np.fromiter(probs.values(), dtype=float, count=len(probs))
    p = p / p.sum()
    tvs = np.empty(reps)
    for i in range(reps):
        draw = rng.multinomial(n, p)
        tvs[i] = 0.5 * np.abs(draw / n - p).sum()
    return float(np.quantile(tvs, q))
