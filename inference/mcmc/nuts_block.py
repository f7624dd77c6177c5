"""A NUTS block inside Metropolis-within-Gibbs: Pyro's NUTS on a set of continuous sites,
every other site (programs included) held at its current value.

The block's target is the full conditional p(θ_B | rest, data) on the unconstrained scale:
potential energy U(u) = −log p(T(u), rest, data) − log |det ∂T/∂u|, with T = biject_to of
each site's support, and the log joint from :meth:`inference.target.Target.log_joint_tensor`
(the scoring fast path when it is on, so one gradient costs one model run). Pyro's NUTS
kernel does the trajectory, the step-size and mass-matrix adaptation and the slice/multinomial
sampling; this module only gives it the potential and hands it the Gibbs chain's randomness.

Adaptation runs for the chain's first ``num_warmup`` sweeps, across sweeps (one NUTS
transition per sweep), and is frozen afterwards, so the sampling phase is an exact
π-invariant update of the block. Because the other blocks change the potential between
sweeps, Pyro's cached potential is cleared before every transition.

Randomness: Pyro's NUTS draws momenta and directions from the global torch RNG; each
transition runs in a seeded quiet run (:func:`ppl.trace.seeded`) whose seed comes from the
chain's generator, so the chain stays bitwise reproducible and the caller's torch RNG is
untouched.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from pyro.infer.mcmc import NUTS
from torch.distributions import biject_to

from inference.config import NutsOptions
from inference.target import SiteInfo, Target
from ppl.trace import seeded

__all__ = ["NutsBlock", "NutsInfo"]


class NutsInfo(NamedTuple):
    """What one NUTS transition did."""

    accept_prob: float
    """Mean Metropolis acceptance statistic along the trajectory."""
    diverging: bool
    """Whether the trajectory diverged (counted after warmup only, as Pyro does)."""
    step_size: float
    """Step size used."""


class _Potential:
    """U(u) for the block's sites with the other sites fixed at ``self.values``."""

    def __init__(self, target: Target, sites: Sequence[SiteInfo]) -> None:
        self.target = target
        self.sites = list(sites)
        self.transforms = {s.name: biject_to(s.fn.support) for s in sites}
        self.values: Mapping[str, Any] = {}

    def constrain(self, params: Mapping[str, torch.Tensor], jacobian: bool = False
                  ) -> tuple[dict[str, Any], Any]:
        """Every site's value with the block's sites at T(params), and (when asked)
        Σ log |det ∂T/∂u|."""
        values = dict(self.values)
        log_jac: Any = 0.0
        for name, t in self.transforms.items():
            values[name] = t(params[name])
            if jacobian:
                log_jac = log_jac + t.log_abs_det_jacobian(params[name], values[name]).sum()
        return values, log_jac

    def __call__(self, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        values, log_jac = self.constrain(params, jacobian=True)
        lp: torch.Tensor = self.target.log_joint_tensor(values) + log_jac
        if not torch.isfinite(lp):  # invalid: infinite energy (a divergence ends the tree),
            zero: torch.Tensor = sum(((u * 0.0).sum() for u in params.values()),  # with a
                                     torch.zeros((), dtype=lp.dtype))  # zero gradient
            return zero + math.inf
        return -lp


class NutsBlock:
    """Pyro's NUTS on ``sites`` (continuous), the rest of the state held fixed.

    Parameters
    ----------
    target : Target
    sites : sequence of SiteInfo
        The continuous sites updated jointly.
    target_accept_prob, max_tree_depth, dense_mass : float, int, bool
        Passed to ``pyro.infer.NUTS`` (``dense_mass`` is its ``full_mass``).

    Examples
    --------
    >>> import numpy as np, torch
    >>> import ppl
    >>> from ppl import dist
    >>> from inference.target import Target
    >>> def model(y=None):
    ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ...     with ppl.plate("data", 3):
    ...         ppl.sample("y", dist.Normal(mu, 1.0), obs=y)
    >>> t = Target(model, (), {"y": np.array([0.5, 1.0, 1.5])})
    >>> block = NutsBlock(t, [t.latents["mu"]])
    >>> values = {"mu": torch.tensor(0.0, dtype=torch.float64)}
    >>> kernel = block.init(values, num_warmup=10, seed=1)
    >>> rng = np.random.default_rng(0)
    >>> values, info = block.step(rng, kernel, values)
    >>> values["mu"].dtype, 0.0 <= info.accept_prob <= 1.0
    (torch.float64, True)
    """

    def __init__(self, target: Target, sites: Sequence[SiteInfo],
                 options: NutsOptions | None = None) -> None:
        options = NutsOptions() if options is None else options
        self.target = target
        self.sites = list(sites)
        self.names = [s.name for s in sites]
        self.options = {"target_accept_prob": options.target_accept_prob,
                        "max_tree_depth": options.max_tree_depth,
                        "full_mass": options.dense_mass}

    def describe(self) -> str:
        return f"NUTS[{', '.join(self.names)}]"

    def init(self, values: Mapping[str, Any], num_warmup: int, seed: int = 0) -> Any:
        """A Pyro NUTS kernel set up at ``values`` to adapt during ``num_warmup``
        transitions (its adaptation state travels in the Gibbs state)."""
        potential = _Potential(self.target, self.sites)
        potential.values = values
        nuts: Any = NUTS
        kernel = nuts(potential_fn=potential, adapt_step_size=True, adapt_mass_matrix=True,
                      **self.options)
        kernel.initial_params = {n: potential.transforms[n].inv(values[n]).detach()
                                 for n in self.names}
        with seeded(seed):  # the step-size search draws momenta
            kernel.setup(warmup_steps=num_warmup)  # type: ignore[no-untyped-call]
        return kernel

    def step(self, rng: np.random.Generator, kernel: Any, values: Mapping[str, Any]
             ) -> tuple[dict[str, Any], NutsInfo]:
        """One NUTS transition of the block from ``values``; returns the new values of every
        site and what happened."""
        potential: _Potential = kernel.potential_fn
        potential.values = values
        params = {n: potential.transforms[n].inv(values[n]).detach() for n in self.names}
        kernel.clear_cache()
        n_div = len(kernel._divergences)
        mean_before = kernel._mean_accept_prob
        step_size = float(kernel.step_size)
        with seeded(int(rng.integers(2**63))):
            new = kernel.sample(params)
        n = kernel._t - kernel._warmup_steps if kernel._t > kernel._warmup_steps else kernel._t
        accept = kernel._mean_accept_prob * n - mean_before * (n - 1)
        out, _ = potential.constrain({k: v.detach() for k, v in new.items()})
        info = NutsInfo(float(np.clip(accept, 0.0, 1.0)), len(kernel._divergences) > n_div,
                        step_size)
        return out, info


class NumpyroNutsBlock(NutsBlock):
    """NumPyro's NUTS on ``sites``, the rest of the state held fixed.

    NumPyro's kernel (trajectory, multinomial sampling, dual-averaging step size, windowed
    mass matrix) runs jit-compiled, once for the block; its potential is the same
    U(u) as :class:`NutsBlock`'s, evaluated on the host through ``jax.pure_callback`` with
    its gradient from torch autograd (a ``jax.custom_vjp``). A program held fixed by the
    other blocks changes between sweeps, and a potential traced in JAX would recompile for
    every new program; the callback compiles once. The adaptation state is NumPyro's
    ``HMCState``, carried from sweep to sweep in the Gibbs state.

    Examples
    --------
    >>> import numpy as np, torch
    >>> import ppl
    >>> from ppl import dist
    >>> from inference.target import Target
    >>> def model(y=None):
    ...     mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
    ...     with ppl.plate("data", 3):
    ...         ppl.sample("y", dist.Normal(mu, 1.0), obs=y)
    >>> t = Target(model, (), {"y": np.array([0.5, 1.0, 1.5])})
    >>> block = NumpyroNutsBlock(t, [t.latents["mu"]])
    >>> values = {"mu": torch.tensor(0.0, dtype=torch.float64)}
    >>> state = block.init(values, num_warmup=10, seed=1)
    >>> values, info = block.step(np.random.default_rng(0), state, values)
    >>> values["mu"].dtype, 0.0 <= info.accept_prob <= 1.0
    (torch.float64, True)
    """

    def describe(self) -> str:
        return f"NUTS[{', '.join(self.names)}] (numpyro)"

    def init(self, values: Mapping[str, Any], num_warmup: int, seed: int = 0) -> Any:
        """A NumPyro ``HMCState`` at ``values`` that adapts during ``num_warmup``
        transitions (with the potential and the compiled transition alongside)."""
        import jax

        potential = _Potential(self.target, self.sites)
        potential.values = values
        with jax.enable_x64(True):
            params = {n: jax.numpy.asarray(potential.transforms[n].inv(values[n]).detach()
                                           .cpu().numpy()) for n in self.names}
        return _NumpyroChain(potential, _numpyro_options(self.options), num_warmup, params,
                             jax.random.PRNGKey(seed % 2**32))

    def step(self, rng: np.random.Generator, kernel: Any, values: Mapping[str, Any]
             ) -> tuple[dict[str, Any], NutsInfo]:
        import jax

        chain: _NumpyroChain = kernel
        chain.potential.values = values
        with jax.enable_x64(True):
            z = {n: jax.numpy.asarray(chain.potential.transforms[n].inv(values[n]).detach()
                                      .cpu().numpy()) for n in self.names}
            energy, grad = _host_energy_and_grad(chain.potential, z)  # the others moved
            transition = chain.transition()
            state = chain.state._replace(
                z=z, z_grad=grad, potential_energy=energy,
                rng_key=jax.random.PRNGKey(int(rng.integers(2**32))))
            step_size = float(state.adapt_state.step_size)
            chain.state = transition(state)
        out, _ = chain.potential.constrain(
            {n: torch.tensor(np.array(chain.state.z[n], dtype=np.float64))
             for n in self.names})
        warm = int(chain.state.i) <= chain.num_warmup
        info = NutsInfo(float(chain.state.accept_prob),
                        bool(chain.state.diverging) and not warm, step_size)
        return out, info


class _NumpyroChain:
    """A NumPyro NUTS block's state: the potential, its HMCState and the compiled transition
    (which holds NumPyro's kernel).

    A checkpoint pickles the potential (its target by reference), the options and the
    ``HMCState``; the kernel and its compiled transition do not pickle, so a chain read back
    builds them again at its first step (:meth:`transition`: set up at the saved state's
    position, then the saved state put back): the same transitions, bit for bit, as the
    chain that was saved. The state is pickled on its own and read back inside JAX's 64-bit
    mode, where it was made: read outside it, its float64 arrays would come back float32.
    """

    def __init__(self, potential: _Potential, options: Mapping[str, Any], num_warmup: int,
                 params: Mapping[str, Any], key: Any) -> None:
        self.num_warmup = num_warmup
        self.potential = potential
        self.options = dict(options)
        self.sample: Any = None
        self.saved: bytes | None = None
        self.state = self._compile(params, key)

    def transition(self) -> Any:
        """The compiled transition HMCState → HMCState (built again after a checkpoint, the
        saved state restored); call it in JAX's 64-bit mode."""
        if self.sample is None:
            assert self.saved is not None
            state = pickle.loads(self.saved)
            self._compile(state.z, state.rng_key)
            self.state, self.saved = state, None
        return self.sample

    def _compile(self, params: Mapping[str, Any], key: Any) -> Any:
        """Build NumPyro's kernel on the potential, set it up at ``params`` (its warmup
        schedule from ``num_warmup``), jit its transition; the initial HMCState."""
        import jax
        from numpyro.infer import NUTS as NumpyroNUTS

        with jax.enable_x64(True):
            kernel = NumpyroNUTS(potential_fn=_jax_potential(self.potential), **self.options)
            state = kernel.init(key, self.num_warmup, init_params=dict(params),
                                model_args=(), model_kwargs={})
        self.sample = jax.jit(lambda st: kernel.sample(st, (), {}))
        return state

    def __getstate__(self) -> dict[str, Any]:
        state = self.saved if self.sample is None else pickle.dumps(self.state)
        return {"potential": self.potential, "options": self.options,
                "num_warmup": self.num_warmup, "state": state}

    def __setstate__(self, saved: dict[str, Any]) -> None:
        self.potential = saved["potential"]
        self.options = saved["options"]
        self.num_warmup = saved["num_warmup"]
        self.saved, self.state, self.sample = saved["state"], None, None


def _numpyro_options(options: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(options)
    out["dense_mass"] = out.pop("full_mass", False)
    return out


def _host_energy_and_grad(potential: _Potential, z: Mapping[str, Any]) -> tuple[Any, Any]:
    """U(z) and ∇U(z) on the host, as numpy float64 (torch autograd)."""
    params = {n: torch.tensor(np.array(v, dtype=np.float64)).requires_grad_(True)
              for n, v in z.items()}
    energy = potential(params)
    grads = torch.autograd.grad(energy, list(params.values()), allow_unused=True)
    out = {n: (np.zeros(np.shape(z[n])) if g is None else g.detach().cpu().numpy())
           for n, g in zip(params, grads, strict=True)}
    return np.asarray(float(energy.detach()), dtype=np.float64), out


def _jax_potential(potential: _Potential) -> Any:
    """U as a JAX function (a host callback), differentiable through a custom VJP."""
    import jax

    struct: Any = jax.ShapeDtypeStruct

    def shapes(z: Any) -> Any:
        return (struct((), np.float64),
                {n: struct(np.shape(v), np.float64) for n, v in z.items()})

    def host(z: Any) -> Any:
        energy, grad = _host_energy_and_grad(potential, z)
        return energy, {n: np.asarray(g, dtype=np.float64) for n, g in grad.items()}

    @jax.custom_vjp
    def energy(z: Any) -> Any:
        return jax.pure_callback(host, shapes(z), z)[0]

    def forward(z: Any) -> Any:
        value, grad = jax.pure_callback(host, shapes(z), z)
        return value, grad

    def backward(grad: Any, g: Any) -> Any:
        return (jax.tree_util.tree_map(lambda x: g * x, grad),)

    energy.defvjp(forward, backward)
    return energy
