"""A law read back from a posterior keeps the prior's declared input order (issue 16).

The model calls ``f(q, c)`` in the prior's order; the program table, ``best()``, a saved
and reloaded result, ``prior.parse`` and ``query`` must hand back programs that, called
positionally the same way, compute the same law. ``Grammar.parse`` without ``inputs``
orders names alphabetically (documented), which is exactly what went wrong before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ppl
from inference import infer, load, query
from ppl import dist
from ppl.errors import PPLError, ProgramError

RATIOS = ppl.Grammar("""
?start: e
e: "(" e "/" e ")"  -> div   // @weight 1
 | "(" e "*" e ")"  -> mul   // @weight 1
 | "(" e "+" e ")"  -> add   // @weight 1
 | NAME             -> var   // @weight 6
NAME: /[a-z_][a-z0-9_]*/
%ignore " "
""", name="ratios")

RNG = np.random.default_rng(16)
Q, C = RNG.uniform(1.0, 3.0, 12), RNG.uniform(0.5, 2.0, 12)
Q_NEW, C_NEW = RNG.uniform(1.0, 3.0, 5), RNG.uniform(0.5, 2.0, 5)

TWO = ppl.ProgramPrior(RATIOS, inputs=["q", "c"], max_depth=2)


def two_input_model(q, c, y=None):
    f = ppl.sample("f", TWO)
    with ppl.plate("data", len(q)):
        ppl.sample("y", dist.Normal(f(q, c), 0.05), obs=y)


@pytest.fixture(scope="module")
def two_input_post():
    y = Q / C + 0.05 * RNG.standard_normal(len(Q))
    return infer(two_input_model, Q, C, y=y, method="mcmc", num_chains=2, num_samples=300,
                 num_warmup=200, seed=0, chain_method="sequential", progress=False)


def test_top_program_called_positionally_is_the_law(two_input_post) -> None:
    law = two_input_post.programs("f")["program"][0]
    assert str(law) == "(q / c)"
    assert law.inputs == ("q", "c")
    np.testing.assert_allclose(law(Q_NEW, C_NEW), Q_NEW / C_NEW)
    np.testing.assert_allclose(two_input_post.best("f")(Q_NEW, C_NEW), Q_NEW / C_NEW)


def test_text_read_back_through_the_prior_is_the_law(two_input_post) -> None:
    text = str(two_input_post.programs("f")["program"][0])
    np.testing.assert_allclose(TWO.parse(text)(Q_NEW, C_NEW), Q_NEW / C_NEW)
    # the grammar alone orders names alphabetically: the documented pitfall
    assert RATIOS.parse(text).inputs == ("c", "q")


def test_saved_result_keeps_the_order(two_input_post, tmp_path: Path) -> None:
    two_input_post.save(tmp_path / "post.nc")
    law = load(tmp_path / "post.nc").best("f")
    assert law.inputs == ("q", "c")
    np.testing.assert_allclose(law(Q_NEW, C_NEW), Q_NEW / C_NEW)


def test_query_rebinds_a_given_program_to_the_prior_order() -> None:
    # a program parsed alphabetically, given to the model: the model's f(q, c) is q / c
    alphabetical = RATIOS.parse("(q / c)")
    pred = query(two_input_model, "y", given={"f": alphabetical},
                 model_args=(Q_NEW, C_NEW), num_samples=200, num_chains=1, seed=0)
    np.testing.assert_allclose(pred.samples["y"].reshape(-1, 5).mean(0), Q_NEW / C_NEW,
                               atol=0.05)


FOUR = ppl.ProgramPrior(RATIOS, inputs=["w", "b", "m", "a"], max_depth=3, max_size=7)


def four_input_model(w, b, m, a, y=None):
    f = ppl.sample("f", FOUR)
    with ppl.plate("data", len(w)):
        ppl.sample("y", dist.Normal(f(w, b, m, a), 0.05), obs=y)


def test_four_input_law_not_in_alphabetical_order() -> None:
    rng = np.random.default_rng(4)
    w, b, m, a = rng.uniform(0.5, 2.0, (4, 10))
    y = w / b + m * a + 0.05 * rng.standard_normal(10)
    post = infer(four_input_model, w, b, m, a, y=y, method="enumerate", num_samples=20)
    law = post.best()
    assert law.key == FOUR.parse("((w / b) + (m * a))").key
    assert law.inputs == ("w", "b", "m", "a")
    fresh = rng.uniform(0.5, 2.0, (4, 6))
    want = fresh[0] / fresh[1] + fresh[2] * fresh[3]
    np.testing.assert_allclose(law(*fresh), want)
    np.testing.assert_allclose(FOUR.parse(str(law))(*fresh), want)
    np.testing.assert_allclose(law(a=fresh[3], m=fresh[2], b=fresh[1], w=fresh[0]), want)


# ---------------------------------------------------------------------------- parse, calls
DEEP = ppl.ProgramPrior(RATIOS, inputs=["q", "c"], max_depth=3)


@pytest.mark.parametrize("text", ["(q / c)", "((c * q) + q)", "c", "((q / q) + (c * c))"])
def test_prior_parse_round_trip(text: str) -> None:
    p = DEEP.parse(text)
    back = DEEP.parse(str(p))
    assert back == p
    assert back.inputs == p.inputs == ("q", "c")
    assert DEEP.log_density(p) > -np.inf


def test_prior_parse_accepts_a_program_and_rebinds_it() -> None:
    p = RATIOS.parse("(q / c)")
    assert TWO.parse(p).inputs == ("q", "c")
    assert TWO.parse(p) == p  # the same tree; only the calling convention changed


def test_prior_parse_refuses_an_unknown_name() -> None:
    with pytest.raises(ProgramError, match=r"\['z'\]"):
        TWO.parse("(q / z)")
    with pytest.raises(ProgramError, match="not among"):
        RATIOS.parse("(q / z)", inputs=["q", "c"])
    with pytest.raises(ProgramError, match="Program"):
        TWO.parse(3.0)  # type: ignore[arg-type]
    with pytest.raises(ProgramError, match="koza"):
        TWO.parse(ppl.Grammar.load("koza").parse("x"))


def test_keyword_calls_are_checked() -> None:
    law = TWO.parse("(q / c)")
    np.testing.assert_allclose(law(q=6.0, c=2.0), 3.0)
    np.testing.assert_allclose(law(6.0, c=2.0), 3.0)
    with pytest.raises(ProgramError, match="Unknown input 'z'"):
        law(q=6.0, z=2.0)
    with pytest.raises(ProgramError, match="'c', which was not given"):
        law(q=6.0)
    with pytest.raises(ProgramError, match="given twice"):
        law(6.0, q=2.0)
    with pytest.raises(ProgramError, match="takes inputs"):
        law(1.0, 2.0, 3.0)


def test_program_inputs_must_be_distinct_and_cover_its_reads() -> None:
    with pytest.raises(ProgramError, match="distinct"):
        RATIOS.parse("(q / c)", inputs=["q", "c", "q"])
    with pytest.raises(PPLError, match=r"\['c'\]"):
        RATIOS.parse("(q / c)").with_inputs(["q"])
    assert RATIOS.parse("(q / c)").reads == ("q", "c")
