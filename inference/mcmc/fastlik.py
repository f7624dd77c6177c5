"""Incremental scoring of program moves: only the factors in the program's Markov blanket.

A program move changes the program's prior term and the observed factors that read the
program's output; every other factor is constant while the other sites are held fixed
(MOVES.md: L(φ) is "the likelihood factors in φ's Markov blanket"). :class:`ProgramLikelihood`
is built from one recorded run (:meth:`inference.target.Target.record`):

- each call of the program site is recorded with its inputs and output;
- an observed site qualifies when its distribution is a supported family (Normal, Laplace,
  StudentT) whose ``loc`` *is* a call's output (same storage: ``Normal(f(x), sigma)``), and
  its other parameters do not depend on that output;
- no other factor may depend on any call's output (checked with autograd provenance).

Then log L(φ') = Σ_sites log D(y; loc = φ'(inputs), other parameters) is computed in numpy
for a proposed program, and the log joint of a move is ``rest + log π₀(φ') + log L(φ')``
with ``rest`` fixed. The view is verified when built: its value at the current program must
equal the recorded log-likelihood, and the incremental log joint of every probe program must
equal a full re-scoring (at least one probe valid on the data), all to 1e-9 (TESTING.md
P1); otherwise it is not used.

A view may also carry a :class:`NoiseLink`: a noise scale σ (a Noise block's site) whose
value enters its Normal factors' scale as σ + c and nothing else in the model. Moving σ then
needs no model run: :meth:`ProgramLikelihood.with_noise` gives the view at another σ (the
factors' scale and σ's own prior term replaced), the same numbers, bit for bit, as a view
built afresh at that σ (both compute them by the same formula). The link is checked when the
view is built, by one more recorded run at the canonical σ = 1: every other site's log
density and the program's outputs must be equal, bit for bit, between the two runs (σ reaches
nothing else), and each linked factor's scale must be σ + c at both, with c read at σ = 1
(so that c does not depend on the state the view was built at).
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy.special import gammaln

from inference.mcmc.cache import LRU, MISSING
from inference.target import Target
from ppl.prior import ProgramPrior
from ppl.program import Program

__all__ = ["NoiseLink", "ProgramLikelihood", "scalar_density"]

LOG_2PI = math.log(2 * math.pi)


def _normal(y: np.ndarray, loc: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    z = (y - loc) / p["scale"]
    return np.asarray(-0.5 * z * z - np.log(p["scale"]) - 0.5 * LOG_2PI)


def _laplace(y: np.ndarray, loc: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    return np.asarray(-np.abs(y - loc) / p["scale"] - np.log(2 * p["scale"]))


def _student_t(y: np.ndarray, loc: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    df, scale = p["df"], p["scale"]
    z = (y - loc) / scale
    return np.asarray(gammaln((df + 1) / 2) - gammaln(df / 2) - 0.5 * np.log(df * math.pi)
                      - np.log(scale) - (df + 1) / 2 * np.log1p(z * z / df))


FAMILIES: dict[str, tuple[Callable[..., np.ndarray], tuple[str, ...]]] = {
    "Normal": (_normal, ("scale",)),
    "Laplace": (_laplace, ("scale",)),
    "StudentT": (_student_t, ("df", "scale")),
}
"""Supported observation families: log density in numpy and the non-loc parameters."""


class _Factor(NamedTuple):
    call: int
    logpdf: Callable[..., np.ndarray]
    y: np.ndarray
    params: dict[str, np.ndarray]
    shape: tuple[int, ...]
    name: str = ""


CANONICAL_NOISE = 1.0
"""The σ at which a :class:`NoiseLink` reads its offset c (a fixed point, so that c, and every
view derived from it, does not depend on the state the view was built at)."""


class NoiseLink(NamedTuple):
    """A noise scale σ that a view can move without running the model: σ enters the scale of
    the factors ``factors`` as σ + ``offset`` and no other term of the model.

    Examples
    --------
    >>> link = NoiseLink("sigma", ("y",), (0,), 0.0, None, 0.0, 0.0)
    >>> link.site, link.offset
    ('sigma', 0.0)
    """

    site: str
    """σ's site name."""
    names: tuple[str, ...]
    """The observed sites whose scale it is."""
    factors: tuple[int, ...]
    """Their indices in the view's factors."""
    offset: float
    """c: every linked factor's scale is σ + c (read at σ = :data:`CANONICAL_NOISE`)."""
    fn: Any
    """σ's distribution at the view's other values (its log density)."""
    rest: float
    """The view's ``rest`` without σ's own prior term."""
    latent: float
    """The view's ``rest_latent`` without σ's own prior term."""
    density: Callable[[float], float] | None = None
    """σ's log density in closed form (a common scalar family, checked against ``fn``
    when the link is built); None: ``fn.log_prob``."""

    def prior(self, value: Any) -> float:
        """σ's prior log density at ``value`` (a tensor of σ's shape)."""
        if self.density is not None:
            return self.density(float(value))
        return float(self.fn.log_prob(value).sum())


LOG_2 = math.log(2.0)


def scalar_density(fn: Any) -> Callable[[float], float] | None:
    """A closed-form log density of a scalar distribution of a common positive family, or
    None: what a noise scale's prior costs without a torch call (60 µs → 1 µs). HalfNormal
    (the default prior of a noise scale) follows torch's own arithmetic, its parameters'
    terms taken from torch (a float32 scale keeps its float32 logarithm); the others need
    float64 parameters. The link checks the result against torch's (1e-12).

    Examples
    --------
    >>> from ppl import dist
    >>> fn = dist.HalfNormal(1.3)
    >>> scalar_density(fn)(0.5) == float(fn.log_prob(torch.tensor(0.5, dtype=torch.float64)))
    True
    """
    dists = torch.distributions
    if isinstance(fn, dists.HalfNormal):  # torch: −(v − 0)² / (2 var) − log s − log √(2π) + log 2
        scale = fn.scale
        if not isinstance(scale, torch.Tensor) or scale.numel() != 1:
            return None
        two_var, log_scale = float(2 * scale**2), float(scale.log())
        c = math.log(math.sqrt(2 * math.pi))
        return lambda v: (-(v * v) / two_var - log_scale - c) + LOG_2 if v >= 0 else -math.inf
    params = [getattr(fn, k, None) for k in ("scale", "rate", "loc", "concentration")]
    if any(isinstance(p, torch.Tensor) and (p.dtype != torch.float64 or p.numel() != 1)
           for p in params):
        return None
    if isinstance(fn, dists.HalfCauchy):
        s = float(fn.scale)
        c = LOG_2 - math.log(math.pi) - math.log(s)
        return lambda v: c - math.log1p((v / s) ** 2) if v >= 0 else -math.inf
    if isinstance(fn, dists.Exponential):
        rate = float(fn.rate)
        return lambda v: math.log(rate) - rate * v if v >= 0 else -math.inf
    if isinstance(fn, dists.LogNormal):
        loc, s = float(fn.loc), float(fn.scale)
        c = -math.log(s) - 0.5 * LOG_2PI
        return lambda v: c - math.log(v) - 0.5 * ((math.log(v) - loc) / s) ** 2 \
            if v > 0 else -math.inf
    if isinstance(fn, dists.Gamma):
        a, b = float(fn.concentration), float(fn.rate)
        c = a * math.log(b) - math.lgamma(a)
        return lambda v: c + (a - 1) * math.log(v) - b * v if v > 0 else -math.inf
    return None


def _numpy(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


def _data_key(calls: list[tuple[Any, Any]], factors: list[_Factor]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for args, kwargs in calls:
        for a in list(args) + [kwargs[k] for k in sorted(kwargs)]:
            arr = np.ascontiguousarray(np.asarray(a, dtype=float))
            h.update(str(arr.shape).encode())
            h.update(arr.tobytes())
    for f in factors:
        h.update(str((f.call, f.shape, f.logpdf.__name__)).encode())
        h.update(np.ascontiguousarray(f.y).tobytes())
    return h.hexdigest()


def _input_key(envs: list[dict[str, np.ndarray]]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for env in envs:
        for name in sorted(env):
            arr = np.ascontiguousarray(env[name])
            h.update(f"{name}{arr.shape}{arr.dtype}".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def _is_view_of(param: Any, out: Any) -> bool:
    return (isinstance(param, torch.Tensor) and isinstance(out, torch.Tensor)
            and param.dtype == out.dtype and param.untyped_storage().data_ptr()
            == out.untyped_storage().data_ptr() and param.storage_offset()
            == out.storage_offset())


class ProgramLikelihood:
    """log L(φ) of one program site with every other site fixed (numpy, incremental)."""

    def __init__(self, site: str, prior: ProgramPrior, calls: list[tuple[Any, Any]],
                 factors: list[_Factor], rest: float, beta: float = 1.0) -> None:
        self.data_key = _data_key(calls, factors)
        """Hash of the observations and the program's inputs (not of other parameters)."""
        self.site = site
        self.prior = prior
        self.calls = calls
        self.envs = [self._env(prior.inputs, args, kwargs) for args, kwargs in calls]
        """Each call's inputs bound by name, as float64 arrays."""
        self.factors = factors
        self.rest = rest
        """log joint minus log π₀(φ) minus beta · log L(φ): constant while other sites are
        fixed."""
        self.rest_latent = 0.0
        """The other latent sites' log densities (part of ``rest``)."""
        self.rest_lik = 0.0
        """The observed sites and factors that do not read the program, untempered (the
        other part of ``rest``, times ``beta``)."""
        self.beta = beta
        """Likelihood temperature of the target this view scores for."""
        self.input_key = _input_key(self.envs)
        """Hash of the program's inputs: outputs cached under it are valid in any view with
        the same inputs."""
        self.normal = all(f.logpdf is _normal for f in factors)
        """Whether every factor is Normal (least-squares fits and Laplace evidence apply)."""
        self.lik = LRU(0)
        """log L per program (:meth:`eval_key`); the kernel sets its capacity."""
        self.outputs: LRU | None = None
        """Program outputs shared by the views of one site, keyed by (input_key,
        eval_key); set by the kernel."""
        self.memo = LRU(0)
        """Anything else derived from a program and this view (constant fits, evidence),
        keyed by the caller; the kernel sets its capacity."""
        self.noise: NoiseLink | None = None
        """A noise scale this view can move without a model run (:meth:`with_noise`)."""

    def locations(self, program: Program, constants: np.ndarray | None = None
                  ) -> list[np.ndarray]:
        """The ``loc`` of every factor for ``program`` (optionally with other constants)."""
        outputs: dict[int, Any] = {}
        locs = []
        for f in self.factors:
            if f.call not in outputs:
                outputs[f.call] = program.evaluate_numpy(self.envs[f.call], constants)
            out = outputs[f.call]
            locs.append(out if np.shape(out) == f.shape else np.broadcast_to(out, f.shape))
        return locs

    def locations_batch(self, program: Program, constants: np.ndarray) -> list[np.ndarray]:
        """The ``loc`` of every factor for ``m`` settings of the constants at once:
        ``constants`` has shape (m, k); factor f's array has shape (m, *f.shape). One run of
        the interpreter serves all m rows (each constant is an (m, 1, ...) column)."""
        m, k = constants.shape
        ndim = max(len(f.shape) for f in self.factors)
        cols = np.ascontiguousarray(constants.T).reshape((k, m) + (1,) * ndim)
        outputs: dict[int, Any] = {}
        locs = []
        for f in self.factors:
            if f.call not in outputs:
                outputs[f.call] = program.evaluate_numpy(self.envs[f.call], cols)
            out, shape = outputs[f.call], (m,) + f.shape
            locs.append(out if np.shape(out) == shape else np.broadcast_to(out, shape))
        return locs

    def log_lik_batch(self, program: Program, constants: np.ndarray) -> np.ndarray:
        """log L of ``program`` at each row of ``constants`` (m, k); −inf where invalid."""
        total = np.zeros(len(constants))
        with np.errstate(all="ignore"):
            for f, loc in zip(self.factors, self.locations_batch(program, constants),
                              strict=True):
                lp = f.logpdf(f.y, loc, f.params)
                total += lp.reshape(len(constants), -1).sum(axis=1)
        return np.where(np.isfinite(total), total, -np.inf)

    def log_lik_rows(self, outputs: np.ndarray) -> np.ndarray:
        """log L of K programs from their outputs, one row each ((K, n): the view's one
        call over the n points of its one factor, as :func:`inference.mcmc.blocks.semantic.
        library_data` requires); the same formula as :meth:`log_lik`, −inf where invalid."""
        f = self.factors[0]
        with np.errstate(all="ignore"):
            total = f.logpdf(f.y, outputs, f.params).reshape(len(outputs), -1).sum(axis=1)
        return np.where(np.isfinite(total), total, -np.inf)

    @staticmethod
    def eval_key(program: Program) -> Any:
        """What a program's log L is cached under: its canonical key when it has no
        constants (programs equal up to commutativity compute the same values, bit for bit),
        else the exact tree (productions and values, constants included)."""
        if any(isinstance(v, float) for v in program.values):
            return (program.prods, program.values)
        return program.key

    def cached_locations(self, program: Program, key: Any = None) -> list[np.ndarray]:
        """:meth:`locations`, from the outputs cache under ``key`` (default
        :meth:`eval_key`) when there."""
        key = self.eval_key(program) if key is None else key
        locs = MISSING if self.outputs is None else self.outputs.get((self.input_key, key))
        if locs is MISSING:
            locs = self.locations(program)
            if self.outputs is not None:
                self.outputs.put((self.input_key, key), locs)
        return locs  # type: ignore[return-value]

    def log_lik(self, program: Program) -> float:
        """log L(φ) = Σ over the program's observed factors, −inf if invalid (cached per
        :meth:`eval_key`; a cached value is the recomputed one, bit for bit)."""
        key = self.eval_key(program)
        total = self.lik.get(key)
        if total is not MISSING:
            return float(total)
        locs = self.cached_locations(program, key)
        total = 0.0
        with np.errstate(all="ignore"):
            for f, loc in zip(self.factors, locs, strict=True):
                total += float(np.sum(f.logpdf(f.y, loc, f.params)))
        total = total if math.isfinite(total) else -math.inf
        self.lik.put(key, total)
        return total

    @staticmethod
    def _env(names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]
             ) -> dict[str, np.ndarray]:
        env = dict(zip(names, args, strict=False))
        env.update(kwargs)
        out = {}
        for k, v in env.items():
            a = np.asarray(v)
            out[k] = a if a.dtype == np.bool_ else a.astype(np.float64)
        return out

    def log_joint(self, program: Program) -> float:
        """The model's log joint with the site set to ``program`` (others unchanged)."""
        prior = self.prior.log_density(program)
        if prior == -math.inf:
            return -math.inf
        return self.rest + prior + self.beta * self.log_lik(program)

    def parts(self, program: Program) -> tuple[float, float]:
        """(Σ latent log densities, untempered log likelihood of all the data) of the model
        with the site set to ``program``: the log joint at any temperature β is
        latent + β · likelihood (tempering swaps, a search's cold log joint)."""
        prior = self.prior.log_density(program)
        if prior == -math.inf:
            return -math.inf, -math.inf
        return self.rest_latent + prior, self.rest_lik + self.log_lik(program)

    def with_noise(self, value: Any) -> ProgramLikelihood:
        """This view with its linked noise scale σ set to ``value`` (a tensor): the linked
        factors' scale is σ + c and ``rest`` has σ's prior term at ``value``; no model run.
        Its caches are empty (log L and fits depend on σ); the outputs are shared."""
        link = self.noise
        if link is None:
            raise ValueError("this view has no noise link")
        view = copy.copy(self)
        view._set_noise(link, value)
        view.lik, view.memo = LRU(0), LRU(0)
        return view

    def _set_noise(self, link: NoiseLink, value: Any) -> None:
        """Link σ with value ``value``: the linked factors' scale σ + c, σ's prior term in
        ``rest`` and ``rest_latent`` (the one formula of a fresh view and a derived one)."""
        prior = link.prior(value)
        self.noise = link
        self.factors = _rescaled(self.factors, link, float(value))
        self.rest, self.rest_latent = link.rest + prior, link.latent + prior

    def noise_sse(self, program: Program) -> tuple[float, int]:
        """(Σ r², N) of the residuals r = y − loc of the linked factors for ``program``."""
        if self.noise is None:
            raise ValueError("this view has no noise link")
        locs = self.cached_locations(program)
        sse, n = 0.0, 0
        with np.errstate(all="ignore"):
            for i in self.noise.factors:
                r = (self.factors[i].y - locs[i]).reshape(-1)
                sse += float(r @ r)
                n += r.size
        return sse, n

    @classmethod
    def build(cls, target: Target, values: dict[str, Any], site: str,
              probes: list[Program], noise: Mapping[str, Sequence[str]] | None = None
              ) -> ProgramLikelihood | None:
        """The view at ``values``, or None when the model does not fit the pattern or the
        view fails its checks: on *every* probe program the incremental log joint must equal
        a full re-scoring, and the current program or at least one probe must be valid on
        the data (an invalid program agrees trivially at −inf)."""
        if not target.fast:
            return None
        try:
            view = cls._build(target, values, site, noise or {})
        except (TypeError, ValueError, RuntimeError, AttributeError):
            return None
        if view is None:
            return None
        finite = math.isfinite(view.log_lik(values[site]))  # checked against the recording
        for probe in probes:
            full, fast = target.log_joint(dict(values, **{site: probe})), view.log_joint(probe)
            if not (math.isclose(full, fast, rel_tol=1e-9, abs_tol=1e-9) or full == fast):
                return None
            finite = finite or math.isfinite(full)
        return view if finite else None

    @classmethod
    def _build(cls, target: Target, values: dict[str, Any], site: str,
               noise: Mapping[str, Sequence[str]]) -> ProgramLikelihood | None:
        run = target.record(values)
        calls = [c for c in run.calls if c.site == site]
        if not calls:
            return None
        outputs = [c.output for c in calls]
        factors: list[_Factor] = []
        matched: set[str] = set()
        for name, (fn, value, _, observed) in run.sites.items():
            if not observed:
                continue
            family = FAMILIES.get(type(fn).__name__)
            hit = next((i for i, out in enumerate(outputs)
                        if family and _is_view_of(getattr(fn, "loc", None), out)), None)
            if hit is None or family is None:
                continue
            params = {k: getattr(fn, k) for k in family[1]}
            if any(isinstance(v, torch.Tensor) and v.requires_grad for v in params.values()):
                return None  # another parameter depends on the program's output
            factors.append(_Factor(hit, family[0], np.asarray(_numpy(value), dtype=float),
                                   {k: np.asarray(_numpy(v), dtype=float)
                                    for k, v in params.items()},
                                   tuple(fn.loc.shape), name))
            matched.add(name)
        if not factors:
            return None
        others = [lp.sum() for name, (_, _, lp, _) in run.sites.items()
                  if name not in matched and isinstance(lp, torch.Tensor) and lp.requires_grad]
        if others:
            grads = torch.autograd.grad(torch.stack(others).sum(), outputs, allow_unused=True,
                                        retain_graph=True)  # the run may be read again
            if any(g is not None for g in grads):
                return None  # some other factor reads the program's output
        np_calls = [(tuple(_numpy(a) for a in c.args),
                     {k: _numpy(v) for k, v in c.kwargs.items()}) for c in calls]
        recorded = float(sum(float(run.sites[n][2].detach().sum()) for n in matched))
        program: Program = values[site]
        view = cls(site, target.latents[site].fn, np_calls, factors, 0.0, target.beta)
        current = view.log_lik(program)
        if not math.isclose(current, recorded, rel_tol=1e-9, abs_tol=1e-9):
            return None
        view.rest, view.rest_latent, view.rest_lik = _rest(run, target.beta, {site, *matched})
        for sigma, names in noise.items():
            link = _noise_link(target, run, values, site, view, sigma, tuple(names))
            if link is not None:
                view._set_noise(link, values[sigma])
                break
        return view


def _rest(run: Any, beta: float, skip: set[str]) -> tuple[float, float, float]:
    """(rest, latent, likelihood) of a recorded run's sites outside ``skip``: rest = latent
    + β · likelihood, summed in site order (not taken as total − log π₀ − β log L: that
    difference would carry the rounding of a huge log L, a very bad current program, into
    every proposal's score)."""
    rest = latent = lik = 0.0
    for name, (fn, _, lp, observed) in run.sites.items():
        if name in skip:
            continue
        term = float(lp.detach().sum())
        if observed or fn is None:
            rest += beta * term
            lik += term
        else:
            rest += term
            latent += term
    return rest, latent, lik


def _rescaled(factors: list[_Factor], link: NoiseLink, sigma: float) -> list[_Factor]:
    """``factors`` with each linked factor's scale set to σ + c."""
    out = list(factors)
    for i in link.factors:
        f = out[i]
        scale = np.full(np.shape(f.params["scale"]), sigma + link.offset)
        out[i] = f._replace(params={**f.params, "scale": scale})
    return out


def _same(a: Any, b: Any) -> bool:
    """Whether two recorded tensors (or values) are equal, bit for bit."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and bool(torch.equal(a.detach(), b.detach()))
    return a is b or bool(np.array_equal(np.asarray(_numpy(a)), np.asarray(_numpy(b))))


def _noise_link(target: Target, run: Any, values: dict[str, Any], site: str,
                view: ProgramLikelihood, sigma: str, names: tuple[str, ...]
                ) -> NoiseLink | None:
    """The link of noise site ``sigma`` to ``view`` (module docstring), or None when the
    model does not let σ move without a run: a linked site not Normal or not among the
    view's factors, a scale other than σ + c, or σ reaching any other term."""
    value = values.get(sigma)
    index = {f.name: i for i, f in enumerate(view.factors)}
    if (not isinstance(value, torch.Tensor) or value.dtype != torch.float64
            or value.numel() != 1 or not names or any(n not in index for n in names)
            or any(view.factors[index[n]].logpdf is not _normal for n in names)
            or float(value) == CANONICAL_NOISE):
        return None
    other = target.record(dict(values, **{sigma: torch.full_like(value, CANONICAL_NOISE)}))
    if other.sites.keys() != run.sites.keys() or len(other.calls) != len(run.calls):
        return None
    for a, b in zip(run.calls, other.calls, strict=True):
        if a.site != b.site or len(a.args) != len(b.args) or a.kwargs.keys() != b.kwargs.keys() \
                or not all(_same(u, v) for u, v in zip(a.args, b.args, strict=True)) \
                or not all(_same(a.kwargs[k], b.kwargs[k]) for k in a.kwargs):
            return None  # σ reaches a program's inputs
    offsets = []
    for n in names:
        now = np.asarray(_numpy(run.sites[n][0].scale), dtype=float)
        then = np.asarray(_numpy(other.sites[n][0].scale), dtype=float) - CANONICAL_NOISE
        c = float(then.reshape(-1)[0])
        if not (np.all(then == c) and np.allclose(now, float(value) + c, rtol=1e-12, atol=0)):
            return None
        offsets.append(c)
    if any(c != offsets[0] for c in offsets):
        return None
    if any(not _same(lp, other.sites[name][2]) for name, (_, _, lp, _) in run.sites.items()
           if name != sigma and name not in names):
        return None  # σ reaches another term
    fn, _, lp, _ = run.sites[sigma]
    rest, latent, _ = _rest(run, target.beta, {site, sigma, *index})  # σ's term aside
    link = NoiseLink(sigma, names, tuple(index[n] for n in names), offsets[0], fn, rest,
                     latent)
    recorded = float(lp.detach().sum())
    if link.prior(value) != recorded:
        return None  # σ's term is not its distribution's log density (a mask, a scale)
    density = scalar_density(fn)
    canonical = float(other.sites[sigma][2].detach().sum())
    if density is not None and all(
            math.isclose(density(float(v)), want, rel_tol=1e-12, abs_tol=1e-12)
            for v, want in ((value, recorded), (CANONICAL_NOISE, canonical))):
        link = link._replace(density=density)
    return link
