"""P2 at scale (validate): program MCMC against enumeration over 182,712 programs
(:mod:`tests.validate.enumeration`). The CI version is the 302-program grammar of
``tests/inference/mcmc/test_posterior_enumeration.py`` (with its broken twins)."""

from __future__ import annotations

import time

import pytest

from tests.validate import enumeration, record


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_mcmc_matches_enumeration_on_182712_programs() -> None:
    t0 = time.perf_counter()
    size = enumeration.SIZES["full"]
    fig = enumeration.run(size)
    assert fig["programs"] == 182_712
    fig["chains x draws (warmup)"] = f"{size.chains} x {size.draws} ({size.warmup})"
    ok = enumeration.passed(fig)
    record.write("P2 enumeration, 182,712 programs", fig, time.perf_counter() - t0, ok)
    assert ok, fig
