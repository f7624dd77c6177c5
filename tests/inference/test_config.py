"""Tests of inference/config.py and of model arguments apart from run options (issue 9).

One home for every option's default and validation; a model whose arguments are named
like run options (``seed``, ``method``, ``num_samples``, ``backend``) runs under ``infer``,
``query`` and ``compare`` through ``model_kwargs``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import ppl
from inference import compare, infer, query
from inference.config import (
    CACHE_SIZE,
    ImportanceOptions,
    McmcOptions,
    NutsOptions,
    RunConfig,
    option_names,
)
from ppl import dist
from ppl.errors import PPLError

REPO = Path(__file__).resolve().parents[2]
PRIOR = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
X = np.linspace(-1.0, 1.0, 8)


def clashing(x, seed, method, num_samples, backend, y=None):
    """A model whose arguments are all named like run options."""
    f = ppl.sample("f", PRIOR)
    shift = seed + method + num_samples + backend  # 1 + 0 + 0 + 0
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x) + shift, 0.1), obs=y)


LAW = PRIOR.parse("(x + 1)").key
CLASH = {"seed": 1.0, "method": 0.0, "num_samples": 0.0, "backend": 0.0}


# ---------------------------------------------------------------------------- model args
def test_a_model_with_arguments_named_like_options_runs_under_infer() -> None:
    post = infer(clashing, X, model_kwargs=CLASH, y=X + 2.0, method="enumerate", seed=0,
                 num_samples=50)
    assert post.best().key == LAW
    assert post.num_draws == 50  # the run's num_samples, not the model's
    mcmc = infer(clashing, X, model_kwargs=CLASH, y=X + 2.0, num_samples=30, num_warmup=30,
                 num_chains=1, seed=3, progress=False)
    assert mcmc.programs()["program"][0].key == post.best().key


def test_a_model_with_arguments_named_like_options_runs_under_query() -> None:
    post = query(clashing, "f", given={"y": X + 2.0}, method="enumerate",
                 model_args=(X,), model_kwargs=CLASH, num_samples=20, seed=0)
    assert post.best().key == LAW
    fwd = query(clashing, "y", given={"f": "x"}, model_args=(X,), model_kwargs=CLASH,
                num_samples=100, num_chains=1)
    np.testing.assert_allclose(fwd.samples["y"].reshape(-1, len(X)).mean(0), X + 1.0,
                               atol=0.05)


def test_a_model_with_arguments_named_like_options_runs_under_compare() -> None:
    table = compare(clashing, X, y=X + 2.0, model_kwargs=CLASH,
                    methods=["enumerate", ("mcmc", {"num_chains": 1})], num_samples=40,
                    chain_method="sequential")
    assert [PRIOR.parse(t).key for t in table["top_program"]] == [LAW, LAW]


def test_a_clashing_argument_left_out_gets_the_model_kwargs_hint() -> None:
    with pytest.raises(PPLError, match=r"'seed' was taken as run option.*model_kwargs=\{'seed'"):
        infer(clashing, X, y=X, seed=1,
              model_kwargs={"method": 0.0, "num_samples": 0.0, "backend": 0.0})


def test_model_arguments_are_checked_before_anything_runs() -> None:
    with pytest.raises(PPLError, match=r"cannot be called with these arguments.*unexpected"):
        infer(clashing, X, model_kwargs={**CLASH, "z": 1.0}, y=X)
    with pytest.raises(PPLError, match="given twice"):
        infer(clashing, X, model_kwargs={**CLASH, "y": X}, y=X)
    with pytest.raises(PPLError, match="cannot be called"):
        query(clashing, "f", given={"y": X}, model_args=(X,))


# ---------------------------------------------------------------------------- RunConfig
def test_build_routes_flat_options_to_their_records() -> None:
    cfg = RunConfig.build(method="auto", num_chains=2, program_moves=3, dense_mass=True,
                          num_particles=7, max_time=5.0)
    assert (cfg.method, cfg.num_chains) == ("auto", 2)
    assert cfg.mcmc == McmcOptions(program_moves=3)
    assert cfg.nuts == NutsOptions(dense_mass=True)
    assert cfg.importance == ImportanceOptions(num_particles=7)
    assert RunConfig.build(**cfg.options()) == cfg
    assert cfg.replace(seed=4).seed == 4 and cfg.replace(seed=4).mcmc == cfg.mcmc
    assert set(cfg.options()) == set(option_names())


def test_warmup_default() -> None:
    assert RunConfig.build(num_samples=300).warmup == 300
    assert RunConfig.build(num_samples=3000, max_time=1.0).warmup == 200
    assert RunConfig.build(num_samples=3000, num_warmup=0, max_time=1.0).warmup == 0


BAD = [
    ({"method": "magic"}, "Unknown method"),
    ({"backend": "jax"}, "backend must be"),
    ({"backend": "numpyro", "method": "enumerate"}, "backend must be"),
    ({"num_samples": 0}, "num_samples must be an integer >= 1"),
    ({"num_warmup": -1}, "num_warmup must be an integer >= 0"),
    ({"num_chains": 1.5}, "num_chains must be an integer"),
    ({"seed": True}, "seed must be an integer"),
    ({"thin": 0}, "thin must be"),
    ({"chain_method": "threads"}, "chain_method"),
    ({"max_time": 0}, "max_time must be a positive"),
    ({"init_values": [1.0]}, "init_values must map"),
    ({"program_moves": 0}, "program_moves must be an integer >= 1"),
    ({"init_candidates": 0}, "init_candidates"),
    ({"num_rungs": 0}, "num_rungs"),
    ({"beta_min": 1.0}, "beta_min"),
    ({"refit": 2.0}, "refit"),
    ({"library_wrap": 0.95}, r"library_wrap must be a share in \[0, 0.9\]"),
    ({"library_wrap": True}, "library_wrap must be"),
    ({"library_root": 1.0}, r"library_root must be a share in \[0, 1\)"),
    ({"library_affine": -0.1}, r"library_affine must be a share in \[0, 0.9\]"),
    ({"library_wrap": 0.5, "library_affine": 0.5}, r"library_wrap \+ library_affine"),
    ({"cache_size": -1}, "cache_size"),
    ({"collapsed": 1}, "collapsed must be True or False"),
    ({"collapsed": True, "num_rungs": 2}, "num_rungs=1"),
    ({"collapsed": True, "method": "importance"}, "collapsed=True is a mode"),
    ({"method": "nuts", "max_time": 3.0}, "method='nuts' supports neither"),
    ({"target_accept_prob": 1.0}, "target_accept_prob"),
    ({"max_tree_depth": 31}, r"max_tree_depth must be an integer in \[1, 30\]"),
    ({"dense_mass": "yes"}, "dense_mass"),
    ({"num_particles": 0}, "num_particles"),
    ({"num_rungz": 2}, "Unknown infer option 'num_rungz'"),
]


@pytest.mark.parametrize(("options", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_options_are_refused_by_name(options: dict[str, Any], message: str) -> None:
    with pytest.raises(PPLError, match=message):
        RunConfig.build(**options)


def test_the_same_rules_hold_for_infer_and_query() -> None:
    def model(x, y=None):
        f = ppl.sample("f", PRIOR)
        with ppl.plate("data", len(x)):
            ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)

    for call in (lambda **o: infer(model, X, y=X, **o),
                 lambda **o: query(model, "f", given={"y": X}, model_args=(X,), **o)):
        with pytest.raises(PPLError, match=r"max_tree_depth must be an integer in \[1, 30\]"):
            call(method="mcmc", max_tree_depth=0)
        with pytest.raises(PPLError, match="program_moves must be"):
            call(method="mcmc", program_moves=0)


# ---------------------------------------------------------------------------- one home
DEFAULT = re.compile(r"\b(program_moves|init_candidates|num_samples|num_chains|"
                     r"target_accept_prob|max_tree_depth|beta_min|cache_size)\s*:\s*[\w| ]+"
                     r"\s*=\s*[\d.]+")


def test_option_defaults_have_one_home() -> None:
    """No signature or record outside inference/config.py gives a run option a default
    (typed code: a default is ``name: type = value``)."""
    found = []
    for path in sorted((REPO / "inference").rglob("*.py")):
        if path.name == "config.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if DEFAULT.search(line) and not line.lstrip().startswith((">>>", "...")):
                found.append(f"{path.relative_to(REPO)}:{i}: {line.strip()}")
    assert not found, "option defaults outside inference/config.py:\n" + "\n".join(found)
    assert McmcOptions().program_moves == 10 and McmcOptions().cache_size == CACHE_SIZE


def test_the_default_check_catches_a_second_default() -> None:
    assert DEFAULT.search("def f(x, program_moves: int = 1) -> None:")
    assert DEFAULT.search("    num_samples: int = 1000")
    assert not DEFAULT.search("post = infer(model, num_samples=n)")
