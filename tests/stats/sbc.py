"""Calibration statistics: SBC ranks (TESTING.md P5) and Geweke z-scores (P6).

- :func:`rank_of_truth`: the rank of a true value among posterior draws, per quantity, with
  ties broken uniformly at random (discrete quantities such as a program's size).
- :func:`rank_pvalues`: the χ² p-value of each quantity's rank histogram against the
  uniform distribution over ``bins`` equal bins of the ranks 0..L.
- :func:`geweke_z`: the z-score of the difference between the mean of iid draws and the
  mean of a Markov chain, the chain's standard error from its effective sample size.
- :func:`geweke_between`: the same difference with the chains' standard error from the
  spread of independent chains' means, and its Student-t p-value (for rare quantities,
  whose within-chain MCSE a few long excursions make unreliable).

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> truth = rng.standard_normal((500, 1))           # 500 data sets, one quantity
>>> draws = rng.standard_normal((500, 99, 1))       # exact posterior (here: the prior)
>>> ranks = np.array([rank_of_truth(t, d, rng) for t, d in zip(truth, draws)])
>>> bool(rank_pvalues(ranks, 99, 10)[0] > 0.001)
True
>>> narrow = np.array([rank_of_truth(t, 0.5 * d, rng) for t, d in zip(truth, draws)])
>>> bool(rank_pvalues(narrow, 99, 10)[0] < 1e-6)    # a posterior too narrow: U-shaped
True
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from inference.arviz import az

__all__ = ["geweke_between", "geweke_z", "rank_of_truth", "rank_pvalues"]


def rank_of_truth(truth: np.ndarray, draws: np.ndarray, rng: np.random.Generator
                  ) -> np.ndarray:
    """Rank of ``truth`` (K,) among ``draws`` (L, K), per quantity: the number of draws
    below it plus a uniform integer in [0, ties], ties being draws equal to it (within
    1e-12). Each rank is in 0..L; for exact posterior draws it is uniform there.

    Examples
    --------
    >>> import numpy as np
    >>> rank_of_truth(np.array([0.5]), np.array([[0.1], [0.9], [0.2]]),
    ...               np.random.default_rng(0)).tolist()
    [2]
    """
    truth = np.asarray(truth, dtype=float)
    draws = np.asarray(draws, dtype=float)
    below = (draws < truth).sum(axis=0)
    ties = np.isclose(draws, truth, rtol=0.0, atol=1e-12).sum(axis=0)
    return np.asarray(below + rng.integers(0, ties + 1))


def rank_pvalues(ranks: np.ndarray, num_draws: int, bins: int) -> np.ndarray:
    """χ² p-values of the rank histograms ``ranks`` (N, K) over ``bins`` bins of 0..L.

    Rank r goes to bin ⌊r · bins / (L + 1)⌋; with ``bins`` dividing ``L + 1`` every bin holds
    the same number of rank values, so under calibration each bin's count is
    Binomial(N, 1/bins).

    Examples
    --------
    >>> import numpy as np
    >>> ranks = np.tile(np.arange(100), 3)[:, None]        # perfectly uniform
    >>> rank_pvalues(ranks, 99, 10).round(3).tolist()
    [1.0]
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 2:
        raise ValueError(f"ranks must have shape (datasets, quantities); got {ranks.shape}.")
    if (num_draws + 1) % bins:
        raise ValueError(f"bins ({bins}) must divide num_draws + 1 ({num_draws + 1}).")
    which = np.minimum(ranks * bins // (num_draws + 1), bins - 1)
    return np.array([stats.chisquare(np.bincount(which[:, k], minlength=bins)).pvalue
                     for k in range(ranks.shape[1])])


def geweke_z(iid: np.ndarray, chain: np.ndarray) -> np.ndarray:
    """z = (mean(chain) − mean(iid)) / √(MCSE(chain)² + sd(iid)² / n) per column.

    ``iid`` (n, K) are independent draws (the marginal-conditional simulator); ``chain``
    (c, m, K) are ``c`` Markov chains of ``m`` steps (the successive-conditional simulator),
    whose MCSE is ArviZ's (from the effective sample size). A column constant in both
    samples gives z = 0.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> z = geweke_z(rng.standard_normal((4000, 2)), rng.standard_normal((2, 2000, 2)))
    >>> bool(np.all(np.abs(z) < 4))
    True
    """
    iid = np.asarray(iid, dtype=float)
    chain = np.asarray(chain, dtype=float)
    out = np.zeros(iid.shape[1])
    for k in range(iid.shape[1]):
        a, b = iid[:, k], chain[:, :, k]
        diff = b.mean() - a.mean()
        if a.std() == 0 and b.std() == 0:
            out[k] = 0.0 if diff == 0 else np.inf
            continue
        mcse = float(az.mcse(b)) if b.std() > 0 else 0.0
        se = np.sqrt(mcse**2 + a.var(ddof=1) / len(a))
        out[k] = diff / se
    return out


def geweke_between(iid: np.ndarray, chain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(z, p) per column: z = (mean of the chains' means − mean(iid)) / √(s_c² / c +
    sd(iid)² / n), s_c the sample sd of the ``c`` chains' means, and p its two-sided
    Student-t p-value on c − 1 degrees of freedom.

    The chains must be independent (each started from its own draw of the joint, as the
    successive-conditional simulator's are): their means are then independent draws of a
    chain's mean, whose spread is the standard error, with no model of the autocorrelation
    within a chain. That is what a rare indicator needs: seen in about 1% of the sweeps, it
    comes from a few long excursions per chain, which an ESS-based MCSE underestimates when
    a chain happens to have few. Columns constant in both samples give z = 0, p = 1.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> z, p = geweke_between(rng.standard_normal((4000, 2)),
    ...                       rng.standard_normal((12, 500, 2)))
    >>> bool(np.all(p > 0.001))
    True
    >>> z, p = geweke_between(rng.standard_normal((4000, 1)),
    ...                       0.3 + rng.standard_normal((12, 500, 1)))
    >>> bool(p[0] < 1e-6)
    True
    """
    iid = np.asarray(iid, dtype=float)
    chain = np.asarray(chain, dtype=float)
    c = chain.shape[0]
    if c < 2:
        raise ValueError("geweke_between needs at least two independent chains")
    means = chain.mean(axis=1)
    z, p = np.zeros(iid.shape[1]), np.ones(iid.shape[1])
    for k in range(iid.shape[1]):
        diff = means[:, k].mean() - iid[:, k].mean()
        se = np.sqrt(means[:, k].var(ddof=1) / c + iid[:, k].var(ddof=1) / len(iid))
        if se == 0:
            z[k], p[k] = (0.0, 1.0) if diff == 0 else (np.inf, 0.0)
            continue
        z[k] = diff / se
        p[k] = 2 * stats.t.sf(abs(z[k]), c - 1)
    return z, p
