"""P2 at scale: program MCMC against the exact posterior over 182,712 programs.

Grammar tiny (E -> E+E | E*E | sin E | x | 1) at depth ≤ 4: 182,712 programs
(``tests/ppl/test_prior.py``). Six points of x + sin x with Normal noise 0.8, the data of
the CI test at depth ≤ 3 (``tests/inference/mcmc/test_posterior_enumeration.py``).
``method="enumerate"`` scores every program (about 100 s); ``method="mcmc"`` draws are
compared with it by a G-test on the top programs plus a rest bucket (counts deflated to
the ESS), total variation against its iid null at the ESS, and E[size] and P(root = r) for
each root production within 4 MCSE.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

import ppl
from inference import infer
from inference.arviz import az
from ppl import dist
from tests.stats.discrete import empirical, gtest_pvalue, tv_distance, tv_null_quantile

PRIOR = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=4)
X = np.linspace(-1.0, 1.0, 6)
Y = X + np.sin(X) + 0.8 * np.random.default_rng(3).standard_normal(6)


class Size(NamedTuple):
    draws: int
    chains: int
    warmup: int


SIZES = {"full": Size(25_000, 4, 1000)}


def model(x: Any, y: Any = None) -> None:
    f = ppl.sample("f", PRIOR)
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), 0.8), obs=y)


def exact() -> dict[Any, float]:
    post = infer(model, X, y=Y, method="enumerate", num_samples=10, num_chains=1)
    table = post.exact["f"]
    return dict(zip(table["program"], table["probability"], strict=True))


def compare(draws: np.ndarray, lp: np.ndarray, probs: dict[Any, float]) -> dict[str, Any]:
    """The P2 figures of MCMC ``draws`` (chains, draws) of programs against ``probs``."""
    counts: dict[Any, int] = {}
    for p in draws.reshape(-1):
        counts[p] = counts.get(p, 0) + 1
    sizes = np.vectorize(lambda p: p.size)(draws).astype(float)
    roots = np.vectorize(lambda p: p.prods[0])(draws)
    top = max(probs, key=lambda k: probs[k])
    indicator = np.vectorize(lambda p: p == top)(draws).astype(float)
    ess = float(min(az.ess(sizes), az.ess(lp), az.ess(indicator)))
    z = {"E[size]": (sizes.mean() - sum(p.size * q for p, q in probs.items()))
         / float(az.mcse(sizes))}
    for r in sorted({p.prods[0] for p in probs}):
        hit = (roots == r).astype(float)
        want = sum(q for p, q in probs.items() if p.prods[0] == r)
        mcse = float(az.mcse(hit)) if hit.std() > 0 else np.sqrt(want * (1 - want) / ess)
        z[f"P(root={PRIOR.grammar.productions[r].alias})"] = (hit.mean() - want) / mcse
    tv = tv_distance(empirical(counts), probs)
    return {"ess": ess, "gtest_p": gtest_pvalue(counts, probs, top_k=50, ess=ess),
            "tv": tv, "tv_null_99": tv_null_quantile(probs, int(ess), q=0.99,
                                                    rng=np.random.default_rng(0)),
            "distinct_programs_drawn": len(counts), "max_abs_z": max(abs(v) for v in z.values()),
            **{k: float(v) for k, v in z.items()}}


def run(size: Size, chain_method: str = "parallel", seed: int = 0) -> dict[str, Any]:
    probs = exact()
    post = infer(model, X, y=Y, method="mcmc", num_samples=size.draws,
                 num_warmup=size.warmup, num_chains=size.chains, seed=seed,
                 chain_method=chain_method, progress=False)
    out = compare(post.samples["f"], post.stats["lp"], probs)
    out["programs"] = len(probs)
    return out


def passed(fig: dict[str, Any]) -> bool:
    return bool(fig["gtest_p"] > 0.001 and fig["tv"] < fig["tv_null_99"]
                and fig["max_abs_z"] < 4)
