"""``compare``: one run per inference method on the same model and data, one row each.

Every entry of ``methods`` is run with :func:`inference.infer` on the same model, arguments
and seed; the table reports speed (wall time, ESS per second), convergence (R-hat,
divergences, acceptance), fit (PSIS-LOO elpd), the most probable program of each program
site, and agreement with a reference entry: the total variation distance between program
posteriors and the largest standardized mean difference of shared numeric sites.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from inference import api
from inference._arviz import az
from inference.compare_plot import plot_compare
from inference.config import METHODS, option_names
from inference.results import Posterior
from ppl import backend
from ppl.errors import PPLError

__all__ = ["COLUMNS", "CompareError", "compare", "max_smd", "plot_compare", "program_tv",
           "timed_infer"]

COLUMNS = ["method", "backend", "wall_time_s", "draws", "ess_bulk", "ess_tail",
           "ess_bulk_per_s", "ess_tail_per_s", "max_rhat", "divergences", "acceptance",
           "elpd_loo", "elpd_loo_se", "loo_pareto_k", "loo_method", "top_program",
           "top_probability", "tv_program", "max_smd"]
"""The columns of :func:`compare`'s table, in order (program columns per site when a model
has several program sites)."""


class CompareError(PPLError):
    """A run of :func:`compare` raised a :class:`~ppl.PPLError`.

    ``label`` names the entry whose run failed (the original error is ``__cause__``), and
    ``posteriors`` maps the label of every entry that finished before it to its Posterior.
    """

    def __init__(self, message: str, label: str, posteriors: dict[str, Posterior]) -> None:
        super().__init__(message)
        self.label = label
        self.posteriors = posteriors


class _Entry(NamedTuple):
    """One entry of ``methods``: a run of ``infer``."""

    label: str
    """The row label: the name, with the backend and other options in brackets."""
    method: str
    """The ``method=`` passed to infer."""
    options: dict[str, Any]
    """Options of this entry; they override the common ones."""


class _Runs(dict[str, Posterior]):
    """Label -> Posterior, kept in ``DataFrame.attrs``; shared (not deep-copied) by the
    copies pandas makes of a table, since Posteriors can be large."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _Runs:
        return self


def compare(model: Callable[..., Any], *args: Any, methods: Sequence[Any],
            reference: str | int | None = None, plot: str | Path | None = None,
            model_kwargs: Mapping[str, Any] | None = None, **kwargs: Any) -> pd.DataFrame:
    """Run ``model(*args, **kwargs)`` once per entry of ``methods``; one table row each.

    Parameters
    ----------
    model : callable
        A model written with ``ppl.sample``, as for :func:`inference.infer`.
    *args, **kwargs
        The model's arguments. A keyword that names a run option of ``infer``
        (``seed``, ``num_samples``, ``chain_method``, ``program_moves``, ...; defaults in
        :mod:`inference.config`, except ``progress``, off here) is a run option common to
        every entry; every other keyword goes to the model, as with ``infer``. A common
        ``executor`` (a Dask client's ``get_executor()``, a ``ProcessPoolExecutor``) runs
        each entry as one task on it, the entries at once and each one's chains one after
        another in its worker (the same draws as locally); ``wall_time_s`` is then the
        run's time in its worker.
    model_kwargs : mapping, optional
        Model keyword arguments of any name (``{"seed": 3}`` for a model argument named
        like a run option), as with ``infer``.
    methods : sequence
        Entries, each a method name (``"mcmc"``) or a pair ``(name, options)``
        (``("mcmc", {"num_rungs": 4})``, ``("nuts", {"backend": "numpyro"})``). Options are
        keyword arguments of ``infer`` and override the common ones; the extra option
        ``"label"`` names the row. The default label is the name with the backend and
        the other options in brackets: ``"nuts[numpyro]"``, ``"mcmc[seed=1]"``.
    reference : str or int, optional
        The entry (label or position) the agreement columns compare with; the first one by
        default.
    plot : str or Path, optional
        Save :func:`plot_compare` of the table to this file.

    Returns
    -------
    pandas.DataFrame
        One row per entry, indexed by label, with the columns of ``COLUMNS``: ``method``,
        ``backend``; ``wall_time_s`` (seconds in ``infer``), ``draws`` (chains × draws);
        ``ess_bulk``, ``ess_tail`` (the minimum over the numeric quantities: every element
        of every non-program site, and per program site its size, depth and log prior, and
        the log joint ``lp``; capped by the weights' ESS for importance sampling) and the
        same per second; ``max_rhat`` (their largest R-hat; NaN with one chain);
        ``divergences`` (sum of ``stats["diverging"]``, else 0); ``acceptance`` (mean
        ``stats["acceptance_rate"]``, else NaN); ``elpd_loo``, ``elpd_loo_se``,
        ``loo_pareto_k`` and ``loo_method`` (PSIS-LOO over the pointwise log-likelihood of
        every observed site, its largest Pareto k̂, and ``"psis"``, or ``"is"`` when PSIS
        gave NaN and plain importance sampling was used; NaN and ``""`` without observed
        sites); ``top_program`` and
        ``top_probability`` (per program site: ``top_program[f]`` ... when there are
        several); ``tv_program`` (total variation between this entry's program posterior
        and the reference's, by canonical key; the largest over program sites, also per
        site when there are several); ``max_smd`` (the largest absolute difference of means over the
        pooled posterior sd, over the elements of the non-program sites shared with the reference;
        NaN when none). ``attrs["posteriors"]`` maps labels to the Posteriors and
        ``attrs["reference"]`` is the reference label.

    Raises
    ------
    PPLError
        Before any run: an unknown method, option or reference, a malformed entry or a
        duplicate label, naming it.
    CompareError
        A run raised a ``PPLError``: names the entry and keeps the finished runs.

    Examples
    --------
    >>> import numpy as np
    >>> import ppl
    >>> from ppl import dist
    >>> from inference import compare
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.3), obs=y)
    >>> x = np.linspace(-1, 1, 8)
    >>> table = compare(model, x, y=np.sin(x), methods=["enumerate", "mcmc"],
    ...                 num_samples=100, num_chains=2, chain_method="sequential")
    >>> table[["top_program", "top_probability", "tv_program"]].round(3)
              top_program  top_probability  tv_program
    label
    enumerate           x            0.808       0.000
    mcmc                x            0.780       0.028
    """
    infer_options = set(option_names()) - {"method"}
    if "method" in kwargs:
        raise PPLError("compare takes methods=[...] (a list of entries), not method=; a "
                       "model argument named 'method' goes in model_kwargs.")
    if "checkpoint" in kwargs:
        raise PPLError("checkpoint= names one run's files: give it in one entry's options, "
                       "e.g. ('mcmc', {'checkpoint': 'run.ckpt'}), not to compare.")
    common: dict[str, Any] = {"progress": False}
    common.update({k: v for k, v in kwargs.items() if k in infer_options})
    model_kw = {k: v for k, v in kwargs.items() if k not in infer_options}
    both = sorted(set(model_kw) & set(model_kwargs or {}))
    if both:
        raise PPLError(f"Model argument {both[0]!r} given twice: as a keyword of compare and "
                       "in model_kwargs.")
    model_kw.update(model_kwargs or {})
    entries = _parse_methods(methods, infer_options)
    ref = entries[_reference_index(reference, entries)].label
    runs, seconds = _run(model, args, model_kw, entries, common)
    rows = [_row(e, runs[e.label], seconds[e.label], runs[ref], common) for e in entries]
    table = pd.DataFrame(rows, index=pd.Index([e.label for e in entries], name="label"))
    table.attrs["posteriors"] = runs
    table.attrs["reference"] = ref
    if plot is not None:
        plot_compare(table, plot)
    return table


# ---------------------------------------------------------------------------- entries
def _parse_methods(methods: Any, infer_options: set[str]) -> list[_Entry]:
    if isinstance(methods, (str, bytes)) or not isinstance(methods, Sequence) or not methods:
        raise PPLError(f"methods must be a non-empty list of entries (names or (name, "
                       f"options) pairs), e.g. ['mcmc', 'enumerate']; got {methods!r}.")
    entries: list[_Entry] = []
    for i, item in enumerate(methods):
        entry = _parse_entry(i, item, infer_options)
        if any(e.label == entry.label for e in entries):
            raise PPLError(f"Two entries of methods have the label {entry.label!r}; give "
                           f"one of them a 'label' option, e.g. ({entry.method!r}, "
                           f"{{'label': '{entry.label}-2', ...}}).")
        entries.append(entry)
    return entries


def _parse_entry(i: int, item: Any, infer_options: set[str]) -> _Entry:
    if isinstance(item, str):
        name, options = item, {}
    elif (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
          and isinstance(item[1], Mapping)):
        name, options = item[0], dict(item[1])
    else:
        raise PPLError(f"methods[{i}] must be a method name or a (name, options dict) pair; "
                       f"got {item!r}.")
    if name not in METHODS:
        raise PPLError(f"methods[{i}]: unknown method {name!r}; expected one of "
                       f"{METHODS}.")
    unknown = sorted(str(k) for k in options if k not in infer_options | {"label"})
    if unknown:
        raise PPLError(f"methods[{i}] ({name!r}): unknown option {unknown[0]!r}; options are "
                       f"keyword arguments of infer: {sorted(infer_options)}, or 'label'.")
    label = options.pop("label", None)
    if label is None:
        label = _default_label(name, options)
    elif not isinstance(label, str) or not label:
        raise PPLError(f"methods[{i}] ({name!r}): label must be a non-empty string; got "
                       f"{label!r}.")
    return _Entry(label, name, options)


def _default_label(name: str, options: Mapping[str, Any]) -> str:
    """``name``, then the backend and the other options in brackets."""
    parts = [str(options["backend"])] if "backend" in options else []
    for key, value in options.items():
        if key != "backend":
            shown = value if isinstance(value, (str, int, float, bool)) or value is None \
                else type(value).__name__
            parts.append(f"{key}={shown}")
    return f"{name}[{', '.join(parts)}]" if parts else name


def _reference_index(reference: str | int | None, entries: list[_Entry]) -> int:
    labels = [e.label for e in entries]
    if reference is None:
        return 0
    if isinstance(reference, str) and reference in labels:
        return labels.index(reference)
    if isinstance(reference, (int, np.integer)) and not isinstance(reference, bool) \
            and -len(labels) <= reference < len(labels):
        return int(reference) % len(labels)
    raise PPLError(f"reference must be the label or position of an entry, one of {labels}; "
                   f"got {reference!r}.")


def _run(model: Callable[..., Any], args: tuple[Any, ...], model_kwargs: dict[str, Any],
         entries: list[_Entry], common: dict[str, Any]
         ) -> tuple[_Runs, dict[str, float]]:
    """One ``infer`` call per entry, timed; a failing run names its entry. With a common
    ``executor``, every entry's run is one task on it (its chains one after another in
    the worker), all submitted before the first is collected."""
    runs, seconds = _Runs(), {}
    executor = common.get("executor")
    if executor is not None:
        if isinstance(executor, ThreadPoolExecutor):
            raise PPLError("compare's runs cannot run in threads: they would share Pyro's "
                           "handler stack. Pass a process-based executor (a Dask client's "
                           "get_executor(), ProcessPoolExecutor).")
        local = {**common, "executor": None, "chain_method": "sequential"}
        jobs = [executor.submit(timed_infer, model, args, model_kwargs, entry.method,
                                {**local, **entry.options}) for entry in entries]
    for i, entry in enumerate(entries):
        try:
            if executor is None:
                runs[entry.label], seconds[entry.label] = timed_infer(
                    model, args, model_kwargs, entry.method, {**common, **entry.options})
            else:
                runs[entry.label], seconds[entry.label] = jobs[i].result()
        except Exception as err:  # a PPLError of the run, or the executor's (lost worker)
            if executor is None and not isinstance(err, PPLError):
                raise
            raise CompareError(f"compare: the run of entry {entry.label!r} failed: "
                               f"{type(err).__name__}: {err}\n(the {len(runs)} runs that "
                               f"finished before it are in .posteriors)", entry.label,
                               dict(runs)) from err
    return runs, seconds


def timed_infer(model: Callable[..., Any], args: tuple[Any, ...],
                model_kwargs: dict[str, Any], method: str, options: dict[str, Any]
                ) -> tuple[Posterior, float]:
    """``infer(model, *args, method=method, **options, model_kwargs=model_kwargs)`` and its
    wall seconds: one entry of :func:`compare` (a task, when compare has an executor).

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from ppl import dist
    >>> def model(y=None):
    ...     ppl.sample("y", dist.Normal(ppl.sample("m", dist.Normal(0.0, 1.0)), 1.0), obs=y)
    >>> post, seconds = timed_infer(model, (), {"y": np.array(0.3)}, "importance",
    ...                             {"num_samples": 10, "progress": False})
    >>> post.method, seconds > 0
    ('importance', True)
    """
    start = time.perf_counter()
    post = api.infer(model, *args, method=method, **options, model_kwargs=model_kwargs)
    return post, time.perf_counter() - start


# ---------------------------------------------------------------------------- one row
def _row(entry: _Entry, post: Posterior, seconds: float, ref: Posterior,
         common: dict[str, Any]) -> dict[str, Any]:
    ess_bulk, ess_tail, rhat = _diagnostics(post)
    elpd, se, khat, loo_method = _loo(post, ess_bulk)
    row: dict[str, Any] = {
        "method": entry.method,
        "backend": str(entry.options.get("backend", common.get("backend"))
                       or backend.active()),
        "wall_time_s": seconds, "draws": post.num_chains * post.num_draws,
        "ess_bulk": ess_bulk, "ess_tail": ess_tail,
        "ess_bulk_per_s": ess_bulk / seconds, "ess_tail_per_s": ess_tail / seconds,
        "max_rhat": rhat,
        "divergences": int(np.sum(post.stats["diverging"])) if "diverging" in post.stats
        else 0,
        "acceptance": _mean(post.stats.get("acceptance_rate")),
        "elpd_loo": elpd, "elpd_loo_se": se, "loo_pareto_k": khat,
        "loo_method": loo_method}
    row.update(_program_columns(post, ref))
    row["max_smd"] = max_smd(post, ref)
    return row


def _mean(values: np.ndarray | None) -> float:
    if values is None:
        return math.nan
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else math.nan


def _quantities(post: Posterior) -> dict[str, np.ndarray]:
    """Numeric (chain, draw) quantities whose ESS and R-hat describe the run."""
    out: dict[str, np.ndarray] = {}
    for site, draws in post.samples.items():
        if site in post.priors:
            prior = post.priors[site]
            out[f"{site}_size"] = np.vectorize(lambda p: p.size, otypes=[float])(draws)
            out[f"{site}_depth"] = np.vectorize(lambda p: p.depth, otypes=[float])(draws)
            out[f"{site}_log_prior"] = np.vectorize(prior.log_density, otypes=[float])(draws)
        elif np.asarray(draws).dtype.kind in "fiub":
            arr = np.asarray(draws, dtype=float)
            flat = arr.reshape(arr.shape[0], arr.shape[1], -1)
            for k in range(int(flat.shape[-1])):
                out[site if arr.ndim == 2 else f"{site}[{k}]"] = flat[:, :, k]
    if "lp" in post.stats:
        out["lp"] = np.asarray(post.stats["lp"], dtype=float)
    return {k: v for k, v in out.items() if np.isfinite(v).all()}


def _diagnostics(post: Posterior) -> tuple[float, float, float]:
    """Minimum bulk and tail ESS and maximum R-hat over :func:`_quantities`."""
    quantities = _quantities(post)
    if not quantities or post.num_draws < 4:
        return math.nan, math.nan, math.nan
    with warnings.catch_warnings():  # constant quantities: ArviZ divides 0 by 0
        warnings.simplefilter("ignore", RuntimeWarning)
        bulk = [float(az.ess(q, method="bulk"))  # type: ignore[no-untyped-call]
                for q in quantities.values()]
        tail = [float(az.ess(q, method="tail"))  # type: ignore[no-untyped-call]
                for q in quantities.values()]
        rhat = ([float(az.rhat(q)) for q in quantities.values()]  # type: ignore[no-untyped-call]
                if post.num_chains > 1 else [math.nan])
    cap = float(post.attrs["ess"]) if isinstance(post.attrs.get("ess"), (int, float)) \
        else math.inf
    return (min(_nanmin(bulk), cap), min(_nanmin(tail), cap), _nanmax(rhat))


def _nanmin(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return min(finite) if finite else math.nan


def _nanmax(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else math.nan


def _loo(post: Posterior, ess: float) -> tuple[float, float, float, str]:
    """Leave-one-out elpd, its standard error, the largest Pareto k̂ and the estimator
    ("psis", "is", or "" when there is nothing to estimate: no observed site, non-finite
    log-likelihoods).

    The points are the elements of every observed site; the relative efficiency is the
    run's minimum bulk ESS over its draws (at most 1). When PSIS gives NaN for a point
    (ArviZ does when the tail of a point's importance ratios is many copies of one value,
    as after draws concentrated on a few programs), the whole estimate falls back to
    plain importance sampling: elpd_i = −log mean_s exp(−log p(y_i | θ_s)).
    """
    chains, draws = post.num_chains, post.num_draws
    nothing = (math.nan, math.nan, math.nan, "")
    if not post.log_lik or chains * draws < 4:
        return nothing
    pointwise = np.concatenate([np.asarray(v, dtype=float).reshape(chains, draws, -1)
                                for v in post.log_lik.values()], axis=2)
    if not np.isfinite(pointwise).all():
        return nothing
    reff = ess / (chains * draws) if math.isfinite(ess) and ess > 0 else 1.0
    with warnings.catch_warnings():  # Pareto k̂ warnings: k̂ is a column of the table
        warnings.simplefilter("ignore")
        idata = az.from_dict(log_likelihood={"obs": pointwise})
        result = az.loo(idata, pointwise=True,  # type: ignore[no-untyped-call]
                        reff=min(reff, 1.0))
    khat = float(np.max(result["pareto_k"]))
    loo_i = np.asarray(result["loo_i"], dtype=float)
    method = "psis"
    if not np.isfinite(loo_i).all():
        flat = -pointwise.reshape(chains * draws, -1)
        loo_i = -(np.logaddexp.reduce(flat, axis=0) - math.log(len(flat)))
        method = "is"
    return (float(loo_i.sum()), float(math.sqrt(len(loo_i) * np.var(loo_i))), khat, method)


# ---------------------------------------------------------------------------- agreement
def _program_distribution(post: Posterior, site: str) -> dict[str, float]:
    """Canonical key -> posterior probability: the exact table when there is one, else the
    frequencies of the draws."""
    exact = post.exact.get(site)
    if exact is not None:
        return {str(k): float(v) for k, v in exact.groupby("key")["probability"].sum().items()}
    keys = [p.key for p in post.samples[site].reshape(-1)]
    counts = pd.Series(keys).value_counts()
    return {str(k): float(v) / len(keys) for k, v in counts.items()}


def program_tv(post: Posterior, ref: Posterior, site: str | None = None) -> float:
    """Total variation ``½ Σ_k |p(k) − q(k)|`` between the program posteriors of ``site`` in
    ``post`` (p) and ``ref`` (q), over canonical program keys (:attr:`ppl.Program.key`).

    Each side is its exact table when it has one (``method="enumerate"``), else the
    frequencies of its draws; a sampled side adds Monte Carlo noise, so judge the value
    against the TV of as many iid draws from the reference (TESTING.md, P2).

    Examples
    --------
    >>> import numpy as np
    >>> import ppl
    >>> from ppl import dist
    >>> from inference import infer
    >>> from inference.compare import program_tv
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), 0.3), obs=y)
    >>> x = np.linspace(-1, 1, 8)
    >>> exact = infer(model, x, y=np.sin(x), method="enumerate", num_samples=10)
    >>> program_tv(exact, exact)
    0.0
    """
    site = post.program_site(site)
    if site not in ref.priors:
        raise PPLError(f"'{site}' is not a program site of the reference posterior; its "
                       f"program sites: {list(ref.priors)}.")
    p, q = _program_distribution(post, site), _program_distribution(ref, site)
    return 0.5 * math.fsum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def max_smd(post: Posterior, ref: Posterior) -> float:
    """The largest absolute standardized mean difference between ``post`` and ``ref``
    over every element of the numeric non-program sites they share (same name and shape):
    ``|mean_p − mean_q| / sqrt((var_p + var_q) / 2)``, posterior means and variances over
    all draws. NaN when they share no such site.

    Two runs that agree differ by Monte Carlo noise only: about sqrt(1/ESS_p + 1/ESS_q)
    standard deviations.

    Examples
    --------
    >>> import numpy as np
    >>> from inference import Posterior
    >>> from inference.compare import max_smd
    >>> def draws(mu):
    ...     theta = np.random.default_rng(0).normal(mu, 1.0, size=(2, 500))
    ...     return Posterior(method="mcmc", samples={"theta": theta},
    ...                      stats={"lp": np.zeros((2, 500))}, log_lik={}, observed={},
    ...                      priors={})
    >>> round(max_smd(draws(1.0), draws(0.0)), 6)
    1.0
    """
    worst = math.nan
    for site, draws in post.samples.items():
        other = ref.samples.get(site)
        if (site in post.priors or site in ref.priors or other is None
                or np.asarray(draws).dtype.kind not in "fiub"
                or np.asarray(other).dtype.kind not in "fiub"
                or np.shape(draws)[2:] != np.shape(other)[2:]):
            continue
        a = np.asarray(draws, dtype=float).reshape(-1, int(np.prod(np.shape(draws)[2:])))
        b = np.asarray(other, dtype=float).reshape(-1, a.shape[1])
        diff = np.abs(a.mean(axis=0) - b.mean(axis=0))
        pooled = np.sqrt((a.var(axis=0, ddof=1) + b.var(axis=0, ddof=1)) / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            smd = np.where(diff == 0, 0.0, diff / pooled)
        worst = float(np.max(smd)) if math.isnan(worst) else max(worst, float(np.max(smd)))
    return worst


def _program_columns(post: Posterior, ref: Posterior) -> dict[str, Any]:
    """Top program and its probability per program site, and the TV to the reference."""
    sites = list(post.priors)
    if not sites:
        return {"top_program": None, "top_probability": math.nan, "tv_program": math.nan}
    out: dict[str, Any] = {}
    tvs = []
    for site in sites:
        suffix = f"[{site}]" if len(sites) > 1 else ""
        top = post.programs(site, top=1, simplify=False, group="key")
        out[f"top_program{suffix}"] = str(top["program"][0])
        out[f"top_probability{suffix}"] = float(top["probability"][0])
        tv = program_tv(post, ref, site) if site in ref.priors else math.nan
        tvs.append(tv)
        if len(sites) > 1:
            out[f"tv_program{suffix}"] = tv
    out["tv_program"] = _nanmax(tvs)
    return out
