"""The posteriordb models of TESTING.md P4 and BENCHMARKS.md B3, with their data.

Each model is written three ways: once with ``ppl`` primitives (the same text runs on Pyro
and on NumPyro), and in Pyro's and NumPyro's own APIs (the B3 baselines). The reference
summaries (posteriordb, BSD-3) are in ``tests/data/posteriordb/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import ppl
from ppl import dist

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "posteriordb"
FILES = {"eight_schools_noncentered": "eight_schools-eight_schools_noncentered.json",
         "kilpisjarvi": "kilpisjarvi_mod-kilpisjarvi.json"}


class Reference(NamedTuple):
    """A posteriordb posterior: the model's arguments and the reference summary."""

    name: str
    args: tuple[Any, ...]
    """Positional arguments of the model (numpy float64 arrays and floats)."""
    summary: dict[str, dict[str, float]]
    """Parameter (Stan name, e.g. ``theta[1]``) -> mean, mcse_mean, sd, q05, q95, n_draws."""


def reference(name: str) -> Reference:
    """Load ``name`` ("eight_schools_noncentered" or "kilpisjarvi")."""
    with open(DATA / FILES[name]) as f:
        rec = json.load(f)
    d = rec["data"]
    if name == "eight_schools_noncentered":
        args: tuple[Any, ...] = (np.asarray(d["sigma"], float), np.asarray(d["y"], float))
    else:
        args = (np.asarray(d["x"], float), np.asarray(d["y"], float), float(d["pmualpha"]),
                float(d["psalpha"]), float(d["pmubeta"]), float(d["psbeta"]))
    return Reference(name, args, rec["reference"])


def draws_of(samples: dict[str, np.ndarray], parameter: str) -> np.ndarray:
    """(chain, draw) draws of a Stan-named parameter (``theta[1]`` is ``theta[..., 0]``)."""
    if "[" in parameter:
        site, index = parameter.rstrip("]").split("[")
        return samples[site][..., int(index) - 1]
    return samples[parameter]


# ---------------------------------------------------------------------- ppl (both backends)
def eight_schools_noncentered(sigma: Any, y: Any = None) -> None:
    """theta = mu + tau · theta_trans, theta_trans ~ N(0, 1): posteriordb's model."""
    mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
    tau = ppl.sample("tau", dist.HalfCauchy(5.0))
    with ppl.plate("schools", len(sigma)):
        theta_trans = ppl.sample("theta_trans", dist.Normal(0.0, 1.0))
        theta = ppl.deterministic("theta", theta_trans * tau + mu)
        ppl.sample("y", dist.Normal(theta, sigma), obs=y)


def eight_schools_centered(sigma: Any, y: Any = None) -> None:
    """theta ~ N(mu, tau) directly: the funnel NUTS cannot cross (divergences)."""
    mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
    tau = ppl.sample("tau", dist.HalfCauchy(5.0))
    with ppl.plate("schools", len(sigma)):
        theta = ppl.sample("theta", dist.Normal(mu, tau))
        ppl.sample("y", dist.Normal(theta, sigma), obs=y)


def kilpisjarvi(x: Any, y: Any, pmualpha: float, psalpha: float, pmubeta: float,
                psbeta: float) -> None:
    """y ~ N(alpha + beta · x, sigma) with x the year (≈ 4000), sigma flat on (0, ∞)."""
    alpha = ppl.sample("alpha", dist.Normal(pmualpha, psalpha))
    beta = ppl.sample("beta", dist.Normal(pmubeta, psbeta))
    sigma = ppl.sample("sigma", dist.ImproperUniform(dist.constraints.positive, (), ()))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(alpha + beta * x, sigma), obs=y)


MODELS = {"eight_schools_noncentered": eight_schools_noncentered,
          "kilpisjarvi": kilpisjarvi}


# ---------------------------------------------------------------------- raw Pyro
def pyro_eight_schools_noncentered(sigma: Any, y: Any = None) -> None:
    import pyro
    import pyro.distributions as pd

    mu = pyro.sample("mu", pd.Normal(0.0, 5.0))
    tau = pyro.sample("tau", pd.HalfCauchy(5.0))
    with pyro.plate("schools", len(sigma)):
        theta_trans = pyro.sample("theta_trans", pd.Normal(0.0, 1.0))
        theta = pyro.deterministic("theta", theta_trans * tau + mu)
        pyro.sample("y", pd.Normal(theta, sigma), obs=y)


def pyro_kilpisjarvi(x: Any, y: Any, pmualpha: float, psalpha: float, pmubeta: float,
                     psbeta: float) -> None:
    import pyro
    import pyro.distributions as pd

    alpha = pyro.sample("alpha", pd.Normal(pmualpha, psalpha))
    beta = pyro.sample("beta", pd.Normal(pmubeta, psbeta))
    sigma = pyro.sample("sigma", pd.ImproperUniform(pd.constraints.positive, (), ()))
    with pyro.plate("data", len(x)):
        pyro.sample("y", pd.Normal(alpha + beta * x, sigma), obs=y)


# ---------------------------------------------------------------------- raw NumPyro
def numpyro_eight_schools_noncentered(sigma: Any, y: Any = None) -> None:
    import numpyro
    import numpyro.distributions as nd

    mu = numpyro.sample("mu", nd.Normal(0.0, 5.0))
    tau = numpyro.sample("tau", nd.HalfCauchy(5.0))
    with numpyro.plate("schools", len(sigma)):
        theta_trans = numpyro.sample("theta_trans", nd.Normal(0.0, 1.0))
        theta = numpyro.deterministic("theta", theta_trans * tau + mu)
        numpyro.sample("y", nd.Normal(theta, sigma), obs=y)


def numpyro_kilpisjarvi(x: Any, y: Any, pmualpha: float, psalpha: float, pmubeta: float,
                        psbeta: float) -> None:
    import numpyro
    import numpyro.distributions as nd

    alpha = numpyro.sample("alpha", nd.Normal(pmualpha, psalpha))
    beta = numpyro.sample("beta", nd.Normal(pmubeta, psbeta))
    sigma = numpyro.sample("sigma", nd.ImproperUniform(nd.constraints.positive, (), ()))
    with numpyro.plate("data", len(x)):
        numpyro.sample("y", nd.Normal(alpha + beta * x, sigma), obs=y)


RAW = {("pyro", "eight_schools_noncentered"): pyro_eight_schools_noncentered,
       ("pyro", "kilpisjarvi"): pyro_kilpisjarvi,
       ("numpyro", "eight_schools_noncentered"): numpyro_eight_schools_noncentered,
       ("numpyro", "kilpisjarvi"): numpyro_kilpisjarvi}
