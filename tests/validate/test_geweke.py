"""P6 (TESTING.md): Geweke's test of program MCMC (:mod:`tests.validate.geweke`).

CI: the RW plan at a small size (five quantities: σ, σ², size, depth, log joint; a root
indicator needs more sweeps than CI has to be estimated) and its broken twin, the RW
block without its Jacobian on σ, which the same test must reject. Validate: both plans at
full size (16 independent chains, the standard error from their spread), every quantity,
figures written for ``docs/validation.md``.
"""

from __future__ import annotations

import time

import pytest

from tests.validate import geweke, record
from tests.validate.mutations import wrong_jacobian

CORE = geweke.NAMES[:5]
SMALL = geweke.SIZES["tiny"]


def core_failures(result: geweke.Result) -> dict[str, float]:
    return {k: v for k, v in geweke.failing(result).items() if k in CORE}


@pytest.mark.parametrize("plan", ["rw"])
def test_geweke_small(plan: str) -> None:
    result = geweke.run(SMALL, plan)
    assert not core_failures(result), dict(zip(geweke.NAMES, result.z.round(2), strict=True))


def test_geweke_small_rejects_a_missing_jacobian(monkeypatch: pytest.MonkeyPatch) -> None:
    from inference.mcmc.blocks import continuous

    with monkeypatch.context() as m:
        m.setattr(continuous, "random_walk", continuous.random_walk)  # restored after
        wrong_jacobian()
        result = geweke.run(SMALL, "rw")
    assert core_failures(result), dict(zip(geweke.NAMES, result.z.round(2), strict=True))


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("plan", list(geweke.PLANS))
def test_geweke_full(plan: str) -> None:
    t0 = time.perf_counter()
    size = geweke.SIZES["full"]
    result = geweke.run(size, plan, workers=2)
    bad = geweke.failing(result)
    assert result.p is not None
    figures = {"iid draws": size.iid, "chains x sweeps": f"{size.chains} x {size.sweeps}",
               "program moves per sweep": size.program_moves,
               "ms per sweep": 1000 * result.seconds_per_sweep,
               "p threshold (Bonferroni)": geweke.ALPHA / len(geweke.NAMES),
               **{f"z {n}": float(z) for n, z in zip(geweke.NAMES, result.z, strict=True)},
               "smallest p": float(result.p.min())}
    record.write(f"P6 Geweke, {plan} plan", figures, time.perf_counter() - t0, not bad)
    assert not bad
