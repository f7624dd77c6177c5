"""The NumPyro counterpart of :class:`ppl.prior.ProgramPrior` (imported lazily)."""

from __future__ import annotations

from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution, constraints

from ppl.prior import ProgramPrior


class NumPyroProgramPrior(Distribution):  # type: ignore[misc]
    """A NumPyro distribution over programs, sharing the tables of a :class:`ProgramPrior`.

    ``sample(key)`` turns the JAX key into a numpy generator, so a fixed key gives a fixed
    program; ``log_prob`` returns the exact conditioned log-probability as a JAX scalar.
    """

    arg_constraints: ClassVar[dict[str, Any]] = {}
    support = constraints.real

    def __init__(self, prior: ProgramPrior) -> None:
        self.prior = prior
        super().__init__(batch_shape=(), event_shape=())

    def sample(self, key: Any, sample_shape: tuple[int, ...] = ()) -> Any:
        seed = np.asarray(jax.random.key_data(key) if jnp.issubdtype(
            key.dtype, jax.dtypes.prng_key) else key).astype(np.uint32)
        return self.prior.sample(sample_shape, rng=np.random.default_rng(seed.tolist()))

    def log_prob(self, value: Any) -> Any:
        return jnp.asarray(self.prior.log_density(value))
