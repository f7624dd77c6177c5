"""Tests of inference/amortized/train.py, loop.py and persist.py.

(iv) a training run of a few seconds lowers the validation loss and is bitwise
deterministic for a seed (also from stored simulations); (v) save/load round trips give
identical log q, and a changed grammar, weights, limits, inputs or model site is refused
naming the difference; files are written atomically; (vi) after brief training, data sets
of the same program are more similar than data sets of different programs.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ppl
from inference.amortized import (
    Proposal,
    ProposalFileError,
    ProposalMismatchError,
    load_proposal,
    persist,
    simulate,
    train_proposal,
)
from ppl import dist
from ppl.errors import PPLError, SiteError

X = np.linspace(-2.0, 2.0, 10)
PRIOR = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3)
FAST = {"batch_size": 16, "valid_size": 32, "hidden": 16, "lr": 0.01, "progress": False}


def make_model(prior: ppl.ProgramPrior, noise: str = "sigma") -> Any:
    def model(x: Any, y: Any = None) -> None:
        f = ppl.sample("f", prior)
        s = ppl.sample(noise, dist.HalfNormal(0.2))
        with ppl.plate("data", len(x)):
            ppl.sample("y", dist.Normal(f(x), s), obs=y)
    return model


MODEL = make_model(PRIOR)


def train(seed: int = 0, **kw: Any) -> Proposal:
    return train_proposal(MODEL, X, y=np.zeros(10), **{"num_steps": 40, "seed": seed,
                                                      "eval_every": 10, **FAST, **kw})


def same_weights(a: Proposal, b: Proposal) -> bool:
    sa, sb = a.network.state_dict(), b.network.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def trained() -> Proposal:
    return train(seed=0)


def test_training_lowers_the_validation_loss(trained: Proposal) -> None:
    first, last = trained.history[0].valid_loss, min(e.valid_loss for e in trained.history)
    assert trained.steps == 40 and len(trained.history) == 5
    assert last < first - 0.2
    assert math.isnan(trained.history[0].train_loss) and trained.seconds > 0


def test_training_is_bitwise_deterministic(trained: Proposal) -> None:
    torch.manual_seed(123)
    np.random.seed(7)
    again = train(seed=0)
    assert same_weights(trained, again) and again.history[1:] != []
    assert [e[:3] for e in again.history] == [e[:3] for e in trained.history]
    assert not same_weights(trained, train(seed=1))


def test_training_on_stored_simulations() -> None:
    sims = simulate(MODEL, X, y=np.zeros(10), num_simulations=200, seed=5)
    a = train(seed=2, simulations=sims, num_steps=30)
    b = train(seed=2, simulations=sims, num_steps=30)
    assert same_weights(a, b)
    assert min(e.valid_loss for e in a.history) < a.history[0].valid_loss
    with pytest.raises(PPLError, match="more than valid_size"):
        train(simulations=sims.subset(range(20)))


def test_stopping_rules_and_continued_training() -> None:
    q = train(num_steps=200, patience=1, eval_every=1, lr=0.5)
    assert q.steps < 200  # a huge learning rate stops improving at once
    timed = train(num_steps=10_000, max_time=0.5)
    assert timed.steps < 10_000
    before = q.steps
    q.train(5, lr=0.01, progress=False, batch_size=16, valid_size=32)
    assert q.steps == before + 5


@pytest.mark.parametrize(("kw", "match"), [({"num_steps": -1}, "num_steps"),
                                           ({"lr": 0.0}, "lr"), ({"max_time": -1}, "max_time"),
                                           ({"batch_size": 0}, "batch_size"),
                                           ({"progress": "yes"}, "progress")],
                         ids=["steps", "lr", "max-time", "batch", "progress"])
def test_bad_options_are_refused(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(PPLError, match=match):
        train(**kw)


def test_the_program_site_is_found_or_named() -> None:
    def two(x: Any, y: Any = None) -> None:
        f, g = ppl.sample("f", PRIOR), ppl.sample("g", PRIOR)
        ppl.sample("y", dist.Normal(f(x) + g(x), 1.0).to_event(1), obs=y)

    def none(x: Any, y: Any = None) -> None:
        ppl.sample("y", dist.Normal(torch.as_tensor(x), 1.0).to_event(1), obs=y)

    with pytest.raises(SiteError, match=r"\['f', 'g'\]"):
        train_proposal(two, X, y=np.zeros(10), num_steps=0, progress=False)
    q = train_proposal(two, X, y=np.zeros(10), prior_site="g", num_steps=0, progress=False)
    assert q.site == "g"
    with pytest.raises(SiteError, match=r"has \[\]"):
        train_proposal(none, X, y=np.zeros(10), num_steps=0, progress=False)


def test_save_load_round_trip(trained: Proposal, tmp_path: Path) -> None:
    path = tmp_path / "q.pt"
    trained.save(path)
    loaded = load_proposal(path, MODEL, X, y=np.zeros(10))
    assert loaded.key == trained.key and loaded.steps == trained.steps
    assert [e[:3] for e in loaded.history][1:] == [e[:3] for e in trained.history][1:]
    rng = np.random.default_rng(0)
    ctx_a, ctx_b = trained.context(X, np.sin(X)), loaded.context(X, np.sin(X))
    for _ in range(200):
        phi, log_q = trained.sample(rng, ctx_a)
        assert loaded.log_prob(phi, ctx_b) == log_q
    loaded.train(3, progress=False, batch_size=8, valid_size=8)  # its Adam state came back
    assert loaded.steps == trained.steps + 3
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left


@pytest.mark.parametrize(("model", "what"), [
    (make_model(ppl.ProgramPrior("koza", inputs=["x"], max_depth=3)), "grammar"),
    (make_model(ppl.ProgramPrior(ppl.Grammar.load("tiny", weights={"sin": 3.0}),
                                 inputs=["x"], max_depth=3)), "weights"),
    (make_model(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=4)), "limits"),
    (make_model(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=3, max_size=6)), "limits"),
    (make_model(ppl.ProgramPrior("tiny", inputs=["u"], max_depth=3)), "inputs"),
    (make_model(PRIOR, noise="scale"), "sites"),
], ids=["grammar", "weights", "depth", "size", "inputs", "site"])
def test_a_changed_model_is_refused(trained: Proposal, tmp_path: Path, model: Any,
                                    what: str) -> None:
    path = tmp_path / "q.pt"
    trained.save(path)
    with pytest.raises(ProposalMismatchError, match=rf"does not fit this model: {what} \("):
        load_proposal(path, model, X, y=np.zeros(10))


def test_bad_files_are_refused(trained: Proposal, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProposalFileError, match="No proposal file"):
        load_proposal(tmp_path / "none.pt", MODEL, X, y=np.zeros(10))
    (tmp_path / "junk.pt").write_text("not a proposal")
    with pytest.raises(ProposalFileError, match="not a proposal file"):
        load_proposal(tmp_path / "junk.pt", MODEL, X, y=np.zeros(10))
    path = tmp_path / "q.pt"
    trained.save(path)
    before = path.read_bytes()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(persist.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        trained.save(path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "junk.pt", "q.pt"]


def test_similar_data_sets_have_similar_embeddings() -> None:
    """(vi): on a 4-program prior, data of the same program embed closer after training."""
    prior = ppl.ProgramPrior(ppl.Grammar.load("tiny", weights={"add": 0, "mul": 0}),
                             inputs=["x"], max_depth=2)
    x = np.linspace(-3.0, 3.0, 12)
    model = make_model(prior)
    q = train_proposal(model, x, y=np.zeros(12), num_steps=60, batch_size=32, valid_size=64,
                       hidden=32, lr=0.01, seed=0, progress=False)
    rng = np.random.default_rng(5)
    laws = [prior.parse(t) for t in ("x", "sin(x)", "1")]
    sets = [(k, (x, law(x) + 0.2 * rng.standard_normal(12)))
            for k, law in enumerate(laws) for _ in range(5)]
    within, across = [], []
    for (ka, da), (kb, db) in itertools.combinations(sets, 2):
        (within if ka == kb else across).append(q.similarity(da, db))
    assert np.mean(within) > np.mean(across) + 0.5
    assert q.similarity(sets[0][1], sets[0][1]) == pytest.approx(1.0, abs=1e-12)
