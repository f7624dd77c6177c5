"""The :class:`Posterior`: draws of every latent site, diagnostics, ArviZ, save and load."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import torch
from pyro import poutine

from inference._arviz import (
    az,
    decode_programs,
    encode_programs,
    from_json_attr,
    prior_from_attrs,
    prior_to_attrs,
    to_json_attr,
)
from inference.functions import merge_equal_functions
from ppl.backend import to_torch
from ppl.errors import PPLError
from ppl.prior import ProgramPrior
from ppl.program import Program
from ppl.trace import seeded, trace_model

__all__ = ["Posterior", "load"]

MOVE_CODES = ["", "regenerate", "insert_delete", "relabel", "library", "neural",
              "neural_edit", "grow", "assemble"]
"""Integer codes of ``sample_stats["move"]`` (a move outside the list gets the next code;
the codes of a result are in its attribute ``ppl_move_codes``)."""


class Posterior:
    """Draws from p(latents | data), with program-aware summaries.

    ``samples[site]`` has shape (chain, draw, ...); program sites hold Program objects.
    Build one with :func:`inference.infer`; restore a saved one with :func:`load`.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference import infer
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
    >>> x = np.linspace(-1, 1, 8)
    >>> post = infer(model, x, y=x + 1.0, method="enumerate")
    >>> post
    Posterior(method='enumerate', sites=['f'], chains=4, draws=1000)
    >>> post.samples["f"].shape, post.log_lik["y"].shape
    ((4, 1000), (4, 1000, 8))
    """

    def __init__(self, *, method: str, samples: dict[str, np.ndarray],
                 stats: dict[str, np.ndarray], log_lik: dict[str, np.ndarray],
                 observed: dict[str, np.ndarray], priors: dict[str, ProgramPrior],
                 model: Callable[..., Any] | None = None, args: tuple[Any, ...] = (),
                 kwargs: Mapping[str, Any] | None = None,
                 attrs: dict[str, Any] | None = None,
                 exact: dict[str, pd.DataFrame] | None = None,
                 fixed: Mapping[str, Any] | None = None) -> None:
        self.method = method
        self.fixed = dict(fixed or {})
        """Sites a query held at given values (programs, parameters): part of every draw."""
        self.samples = samples
        """Site -> array of draws, shape (chain, draw, ...)."""
        self.stats = stats
        """Sample statistics (lp, acceptance_rate, ...), shape (chain, draw)."""
        self.log_lik = log_lik
        """Observed site -> pointwise log-likelihood, shape (chain, draw, *obs)."""
        self.observed = observed
        self.priors = priors
        self.attrs = dict(attrs or {})
        self.exact = exact or {}
        self._model = model
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})

    @property
    def num_chains(self) -> int:
        """Number of chains C: ``samples[site]`` has shape (C, draws, ...).

        Examples
        --------
        >>> import numpy as np, ppl
        >>> from ppl import dist
        >>> from inference import infer
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", prior)
        ...     with ppl.plate("data", len(x)):
        ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
        >>> x = np.linspace(-1, 1, 8)
        >>> post = infer(model, x, y=x + 1.0, method="enumerate")
        >>> post.num_chains
        4
        >>> infer(model, x, y=x + 1.0, method="enumerate", num_chains=1).num_chains
        1
        """
        return int(next(iter(self.stats.values())).shape[0]) if self.stats else 0

    @property
    def num_draws(self) -> int:
        """Number of kept draws per chain.

        Examples
        --------
        >>> import numpy as np, ppl
        >>> from ppl import dist
        >>> from inference import infer
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", prior)
        ...     with ppl.plate("data", len(x)):
        ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
        >>> x = np.linspace(-1, 1, 8)
        >>> post = infer(model, x, y=x + 1.0, method="enumerate", num_samples=50)
        >>> post.num_draws, post.samples["f"].shape
        (50, (4, 50))
        """
        return int(next(iter(self.stats.values())).shape[1]) if self.stats else 0

    def __repr__(self) -> str:
        return (f"Posterior(method={self.method!r}, sites={list(self.samples)}, "
                f"chains={self.num_chains}, draws={self.num_draws})")

    # ------------------------------------------------------------------ programs
    def program_site(self, site: str | None = None) -> str:
        """The name of a program site of this posterior: ``site`` itself once checked, or,
        when ``site`` is None, the only program site (an error when there are several).

        Raises
        ------
        PPLError
            When ``site`` is not a program site, or is None and the posterior has no
            program site or more than one.

        Examples
        --------
        >>> import numpy as np, ppl
        >>> from ppl import dist
        >>> from inference import infer
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", prior)
        ...     with ppl.plate("data", len(x)):
        ...         ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)
        >>> x = np.linspace(-1, 1, 8)
        >>> post = infer(model, x, y=x + 1.0, method="enumerate")
        >>> post.program_site(), post.program_site("f")
        ('f', 'f')
        """
        names = list(self.priors)
        if site is None:
            if len(names) != 1:
                raise PPLError(f"Name the program site: one of {names}.")
            return names[0]
        if site not in self.priors:
            raise PPLError(f"'{site}' is not a program site of this posterior; program sites: "
                           f"{names}.")
        return site

    def programs(self, site: str | None = None, top: int | None = 10, prob: float = 0.9,
                 simplify: bool = True, group: str = "function") -> pd.DataFrame:
        """Distinct programs of ``site``, most probable first.

        Programs equal up to commutative reordering and constant values (equal ``.key``)
        form one row; with ``group="function"`` (default) rows whose programs compute the
        same function (equal on fresh points to 1e-12,
        :func:`~inference.functions.merge_equal_functions`) are merged too, their
        probabilities summed (``group="key"``: one row per key). Columns: ``program`` (a
        :class:`~ppl.program.Program`: the most frequent tree, constants at their posterior
        medians, inputs in the prior's declared order, so ``table["program"][0](*inputs)``
        matches the model's own call; ``str()`` gives its text), ``probability`` (exact for
        ``method="enumerate"``, else the fraction of draws), ``count``, ``log_joint`` (mean
        over its draws), ``simplified`` (sympy), ``constants`` (median and central ``prob``
        interval of each constant, from the draws of that most frequent tree), ``trees``
        (the distinct keys merged into the row).

        Examples
        --------
        >>> import numpy as np, ppl
        >>> from ppl import dist
        >>> from inference import infer
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", prior)
        ...     with ppl.plate("data", len(x)):
        ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
        >>> x = np.linspace(-1, 1, 8)
        >>> post = infer(model, x, y=x + 1.0, method="enumerate")
        >>> table = post.programs(top=2)
        >>> [(str(p), round(pr, 3)) for p, pr in zip(table["program"], table["probability"])]
        [('(x + 1)', 0.988), ('1', 0.01)]
        >>> table["simplified"][0]
        'x + 1.0'
        """
        site = self.program_site(site)
        if group not in ("function", "key"):
            raise PPLError(f"group must be 'function' or 'key'; got {group!r}.")
        draws = self.samples[site].reshape(-1)
        lp = self.stats["lp"].reshape(-1) if "lp" in self.stats else np.full(len(draws), np.nan)
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(draws):
            groups.setdefault(p.key, []).append(i)
        exact = self.exact.get(site)
        rows = []
        for key, idx in groups.items():
            rows.append(self._row(draws, lp, idx, prob, key, exact))
        rows = merge_equal_functions(rows) if group == "function" else \
            [{**row, "trees": 1} for row in rows]
        table = pd.DataFrame(rows).sort_values(["probability", "count"], ascending=False)
        table = table.reset_index(drop=True)
        if top is not None:
            table = table.head(top)
        if simplify:
            table["simplified"] = [_simplify(p) for p in table["program"]]
        return table

    def best(self, site: str | None = None) -> Program:
        """The most probable program of ``site`` (the first row of :meth:`programs`), with
        constants at their posterior medians and the prior's input order.

        Examples
        --------
        >>> import numpy as np, ppl
        >>> import pyro.distributions as dist
        >>> from inference import infer
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", prior)
        ...     with ppl.plate("data", len(x)):
        ...         ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)
        >>> x = np.linspace(-1, 1, 8)
        >>> post = infer(model, x, y=x + 1.0, method="enumerate")
        >>> law = post.best()
        >>> str(law), float(law(2.0))
        ('(x + 1)', 3.0)
        """
        site = self.program_site(site)
        table = self.programs(site, top=1, simplify=False)
        law: Program = table["program"][0]
        return law

    @staticmethod
    def _row(draws: np.ndarray, lp: np.ndarray, idx: list[int], prob: float, key: str,
             exact: pd.DataFrame | None) -> dict[str, Any]:
        shapes: dict[tuple[int, ...], list[int]] = {}
        for i in idx:
            shapes.setdefault(draws[i].prods, []).append(i)
        main = max(shapes.values(), key=len)
        rep: Program = draws[main[0]]
        consts = np.array([draws[i].constants for i in main])
        intervals = ""
        if consts.size:
            lo, med, hi = np.quantile(consts, [(1 - prob) / 2, 0.5, (1 + prob) / 2], axis=0)
            rep = rep.with_constants(med)
            intervals = "; ".join(f"c{k}: {m:.4g} [{a:.4g}, {b:.4g}]"
                                  for k, (a, m, b) in enumerate(zip(lo, med, hi, strict=True)))
        probability = len(idx) / len(draws)
        if exact is not None:
            probability = float(exact.loc[exact["key"] == key, "probability"].sum())
        return {"program": rep, "probability": probability, "count": len(idx),
                "log_joint": float(np.mean(lp[idx])), "constants": intervals}

    # ------------------------------------------------------------------ ArviZ
    def to_arviz(self, posterior_predictive: bool = False, seed: int = 0) -> Any:
        """An ``arviz.InferenceData`` with posterior, sample_stats, log_likelihood,
        observed_data (and posterior_predictive when asked; needs the model).

        A program site becomes integer codes into a table of its tree shapes (JSON, in the
        posterior's attributes) and the variables ``<site>_size``, ``<site>_depth`` and
        ``<site>_log_prior`` (and ``<site>_n_constants``, ``<site>_constants`` when its
        programs have constants): nothing is pickled.

        Examples
        --------
        >>> import numpy as np, ppl
        >>> from ppl import dist
        >>> from inference import infer
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", prior)
        ...     with ppl.plate("data", len(x)):
        ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
        >>> x = np.linspace(-1, 1, 8)
        >>> post = infer(model, x, y=x + 1.0, method="enumerate")
        >>> idata = post.to_arviz()
        >>> list(idata.posterior.data_vars)
        ['f', 'f_size', 'f_depth', 'f_log_prior']
        >>> idata.log_likelihood["y"].shape
        (4, 1000, 8)
        """
        posterior: dict[str, np.ndarray] = {}
        attrs: dict[str, Any] = {"ppl_method": self.method}
        priors = {}
        for site, arr in self.samples.items():
            if site in self.priors:
                enc = encode_programs(site, arr, self.priors[site])
                attrs[f"ppl_programs_{site}"] = to_json_attr(enc.pop("__table__"))
                posterior.update(enc)
                priors[site] = prior_to_attrs(self.priors[site])
            else:
                posterior[site] = arr
        attrs["ppl_priors"] = to_json_attr(priors)
        attrs["ppl_attrs"] = to_json_attr(_jsonable(self.attrs))
        stats = dict(self.stats)
        if "move" in stats:
            codes = MOVE_CODES + sorted({str(m) for m in np.ravel(stats["move"])}
                                        - set(MOVE_CODES))
            stats["move"] = np.vectorize(codes.index, otypes=[np.int64])(stats["move"])
            attrs["ppl_move_codes"] = to_json_attr(codes)
        groups: dict[str, Any] = {"posterior": posterior, "sample_stats": stats,
                                  "log_likelihood": self.log_lik,
                                  "observed_data": self.observed}
        if posterior_predictive:
            groups["posterior_predictive"] = self._predictive(seed=seed)
        for site, table in self.exact.items():
            exact = table.groupby("key")["probability"].sum()
            attrs[f"ppl_exact_{site}"] = to_json_attr({str(k): float(v)
                                                       for k, v in exact.items()})
        idata = az.from_dict(**{k: v for k, v in groups.items() if v})
        if "posterior" not in idata.groups():
            raise PPLError("This result has no latent sites: there is no posterior to "
                           "convert (its log-likelihood is in Posterior.log_lik).")
        idata.posterior.attrs.update(attrs)
        return idata

    def summary(self, **kwargs: Any) -> pd.DataFrame:
        """``arviz.summary`` of the numeric sites and program statistics (size, depth,
        number of constants, log prior).

        Examples
        --------
        >>> import numpy as np, ppl
        >>> from ppl import dist
        >>> from inference import infer
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", prior)
        ...     with ppl.plate("data", len(x)):
        ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
        >>> x = np.linspace(-1, 1, 8)
        >>> post = infer(model, x, y=x + 1.0, method="enumerate")
        >>> table = post.summary()
        >>> table.index.tolist(), round(float(table.loc["f_depth", "mean"]), 2)
        (['f_size', 'f_depth', 'f_log_prior'], 1.99)
        """
        if not self.samples:
            return pd.DataFrame()
        idata = self.to_arviz()
        names = [v for v in idata.posterior.data_vars if v not in self.priors
                 and not (v.endswith("_constants") and not v.endswith("_n_constants"))]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return az.summary(idata, var_names=names, **kwargs)

    # ------------------------------------------------------------------ prediction
    def _latent_draw(self, c: int, d: int) -> dict[str, Any]:
        out = dict(self.fixed)
        for site, arr in self.samples.items():
            v = arr[c, d]
            out[site] = v if site in self.priors else torch.as_tensor(v)
        return out

    def _predictive(self, *args: Any, seed: int = 0, num_draws: int | None = None,
                    model: Callable[..., Any] | None = None, **kwargs: Any
                    ) -> dict[str, np.ndarray]:
        model = model or self._model
        if model is None:
            raise PPLError("This posterior has no model (it was loaded from disk): pass "
                           "model=.")
        if not args and not kwargs:
            args, kwargs = self._args, self._kwargs
        args = tuple(to_torch(a) for a in args)
        kwargs = {k: to_torch(v) for k, v in kwargs.items()}
        chains, draws = self.num_chains, self.num_draws
        step = 1 if num_draws is None else max(1, chains * draws // num_draws)
        picks = [(c, d) for c in range(chains) for d in range(draws)][::step]
        out: dict[str, list[np.ndarray]] = {}
        free = poutine.uncondition(model)
        with seeded(seed):
            for c, d in picks:
                tr = trace_model(free, args, kwargs, data=self._latent_draw(c, d))
                for name in self.observed:
                    value: Any = tr.nodes[name]["value"]
                    out.setdefault(name, []).append(np.asarray(value.detach().numpy()))
        shape = (chains, draws) if step == 1 else (1, len(picks))
        return {k: np.asarray(v).reshape(shape + np.asarray(v[0]).shape) for k, v in out.items()}

    def predict(self, *args: Any, prob: float = 0.9, num_draws: int = 1000, seed: int = 0,
                model: Callable[..., Any] | None = None, **kwargs: Any) -> pd.DataFrame:
        """Posterior predictive at new inputs: ``model(*args, **kwargs)`` run with latent
        sites from the posterior and observed sites sampled.

        Returns one row per observation of each observed site: ``mean``, ``sd`` and the
        central ``prob`` interval (``lower``, ``upper``) over the draws whose prediction is
        finite, and ``valid``, the fraction of such draws (a posterior program can be
        invalid at a new input, e.g. x/x at 0).

        Examples
        --------
        >>> import numpy as np, ppl
        >>> from ppl import dist
        >>> from inference import infer
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", prior)
        ...     with ppl.plate("data", len(x)):
        ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
        >>> x = np.linspace(-1, 1, 8)
        >>> post = infer(model, x, y=x + 1.0, method="enumerate")
        >>> table = post.predict(np.array([0.0, 2.0]), num_draws=100)
        >>> table[["site", "mean", "valid"]].round(1)
          site  mean  valid
        0    y   1.0    1.0
        1    y   3.0    1.0
        """
        draws = self._predictive(*args, seed=seed, num_draws=num_draws, model=model, **kwargs)
        frames = []
        for site, arr in draws.items():
            flat = arr.reshape(-1, *arr.shape[2:]).astype(float)
            flat[~np.isfinite(flat)] = np.nan
            valid = np.mean(np.isfinite(flat), axis=0)
            with warnings.catch_warnings():  # points where every draw is invalid stay NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                lo, hi = np.nanquantile(flat, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
                mean, sd = np.nanmean(flat, 0), np.nanstd(flat, 0)
            frames.append(pd.DataFrame({"site": site, "mean": mean.reshape(-1),
                                        "sd": sd.reshape(-1), "lower": lo.reshape(-1),
                                        "upper": hi.reshape(-1),
                                        "valid": valid.reshape(-1)}))
        return pd.concat(frames, ignore_index=True)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str) -> None:
        """Write the result to NetCDF; :func:`load` restores it (programs included).

        Examples
        --------
        >>> import numpy as np, ppl
        >>> from ppl import dist
        >>> from inference import infer
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", prior)
        ...     with ppl.plate("data", len(x)):
        ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
        >>> x = np.linspace(-1, 1, 8)
        >>> post = infer(model, x, y=x + 1.0, method="enumerate")
        >>> import os, tempfile
        >>> from inference import load
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     post.save(os.path.join(folder, "post.nc"))
        ...     back = load(os.path.join(folder, "post.nc"))
        >>> back.best(), back.num_draws
        (Program('(x + 1)'), 1000)
        """
        self.to_arviz().to_netcdf(str(path))

    @classmethod
    def from_arviz(cls, idata: Any) -> Posterior:
        """Rebuild a Posterior from InferenceData written by :meth:`to_arviz`.

        Examples
        --------
        >>> import numpy as np, ppl
        >>> from ppl import dist
        >>> from inference import infer
        >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
        >>> def model(x, y=None):
        ...     f = ppl.sample("f", prior)
        ...     with ppl.plate("data", len(x)):
        ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
        >>> x = np.linspace(-1, 1, 8)
        >>> post = infer(model, x, y=x + 1.0, method="enumerate")
        >>> from inference import Posterior
        >>> back = Posterior.from_arviz(post.to_arviz())
        >>> back.method, back.best(), round(float(back.programs()["probability"][0]), 3)
        ('enumerate', Program('(x + 1)'), 0.988)
        """
        priors = {site: prior_from_attrs(rec)
                  for site, rec in from_json_attr(idata, "ppl_priors").items()}
        samples: dict[str, np.ndarray] = {}
        post = idata.posterior
        stat_suffixes = ("_size", "_depth", "_n_constants", "_constants", "_log_prior")
        for name in post.data_vars:
            if name in priors:
                table = from_json_attr(idata, f"ppl_programs_{name}")
                consts = (post[f"{name}_constants"].values if f"{name}_constants" in post
                          else np.zeros(post[name].shape + (0,)))
                samples[name] = decode_programs(post[name].values, consts, table,
                                                priors[name].grammar)
            elif not any(name == p + s for p in priors for s in stat_suffixes):
                samples[name] = post[name].values
        stats = {k: v.values for k, v in idata.sample_stats.data_vars.items()}
        if "move" in stats:
            codes = from_json_attr(idata, "ppl_move_codes")
            stats["move"] = np.asarray(codes, dtype=object)[stats["move"]]
        log_lik = {k: v.values for k, v in idata.log_likelihood.data_vars.items()}
        observed = {k: v.values for k, v in idata.observed_data.data_vars.items()}
        exact = {}
        for site in priors:
            if f"ppl_exact_{site}" in post.attrs:
                table = from_json_attr(idata, f"ppl_exact_{site}")
                exact[site] = pd.DataFrame({"key": list(table),
                                            "probability": list(table.values())})
        return cls(method=str(post.attrs.get("ppl_method", "")), samples=samples,
                   stats=stats, log_lik=log_lik, observed=observed, priors=priors,
                   attrs=from_json_attr(idata, "ppl_attrs"), exact=exact)


def load(path: str) -> Posterior:
    """Read a result written by :meth:`Posterior.save`.

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> from inference import infer
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.5), obs=y)
    >>> x = np.linspace(-1, 1, 8)
    >>> post = infer(model, x, y=x + 1.0, method="enumerate")
    >>> import os, tempfile
    >>> from inference import load
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     post.save(os.path.join(folder, "post.nc"))
    ...     back = load(os.path.join(folder, "post.nc"))
    >>> back
    Posterior(method='enumerate', sites=['f'], chains=4, draws=1000)
    >>> back.programs(top=1)["program"][0]
    Program('(x + 1)')
    """
    idata = az.from_netcdf(str(path))  # type: ignore[no-untyped-call]
    return Posterior.from_arviz(idata)


def _simplify(p: Program) -> str:
    import sympy

    try:
        expr = sympy.simplify(p.to_sympy())
        return str(expr.evalf(4)) if expr.free_symbols or not expr.is_number else str(expr)
    except Exception:  # sympy can fail on exotic trees; the table still prints
        return ""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
