"""P9 (TESTING.md): every mutation is caught by at least one test
(:mod:`tests.validate.mutations`).

CI: each mutation applies (the names it patches exist) and the plugin leaves the library
alone without ``$PPL_MUTATION``. Validate: for each mutation, its catching tests pass
unmutated and at least one fails mutated; the map is written for ``docs/validation.md``.
"""

from __future__ import annotations

import time

import pytest

from tests.validate import mutations, record


@pytest.mark.parametrize("name", list(mutations.MUTATIONS))
def test_mutation_applies(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from inference import api
    from inference.mcmc import driver, moves
    from inference.mcmc.blocks import continuous

    for module, attr in [(moves, "regenerate"), (driver, "make_specs"),
                         (api, "make_specs"), (continuous, "random_walk")]:
        monkeypatch.setattr(module, attr, getattr(module, attr))  # restored after the test
    monkeypatch.setitem(moves.MOVES, "regenerate", moves.MOVES["regenerate"])
    before = (moves.regenerate, driver.make_specs, continuous.random_walk)
    mutations.MUTATIONS[name]()
    after = (moves.regenerate, driver.make_specs, continuous.random_walk)
    assert sum(a is not b for a, b in zip(before, after, strict=True)) == 1


def test_every_mutation_has_catchers() -> None:
    assert set(mutations.CATCHERS) == set(mutations.MUTATIONS)
    assert all(mutations.CATCHERS.values())


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("name", list(mutations.MUTATIONS))
def test_mutation_is_caught(name: str) -> None:
    t0 = time.perf_counter()
    baseline = {node: mutations.catches(None, node) for node in mutations.CATCHERS[name]}
    assert not any(baseline.values()), f"catching tests fail unmutated: {baseline}"
    caught = {node: mutations.catches(name, node) for node in mutations.CATCHERS[name]}
    figures = {node.split("::", 1)[1]: "fails (caught)" if hit else "passes (missed)"
               for node, hit in caught.items()}
    record.write(f"P9 mutation {name}", figures, time.perf_counter() - t0, any(caught.values()))
    assert any(caught.values()), caught
