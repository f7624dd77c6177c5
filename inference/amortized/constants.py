"""q(c) of a constant leaf: a Normal whose mean and log-sd the decoder outputs.

For a Normal or Laplace constant prior p_c (location a, scale b) the head is Normal(m, s) on
the real line with

    m = a + b · o_m,    log s = log b' + 4 tanh(o_s / 4)

(b' = b, or b√2 for a Laplace prior: the same variance), so a zero output o gives the
prior's location and scale, and s stays within a factor e^{±4} of it. For a uniform prior on
(a, b) the head is a Normal(m, s) on the logit scale z, c = a + (b − a) σ(z), with

    m = 3 tanh(o_m / 3),    log s = log 1.7 + tanh(o_s),
    log q(c) = log N(z; m, s) − log(b − a) − log u − log(1 − u),   u = (c − a) / (b − a),

so every proposed constant lies inside the prior's interval (a zero output gives a
logit-normal close to uniform). In every case q(c) > 0 wherever p_c(c) > 0.

Examples
--------
>>> import math
>>> import numpy as np
>>> from ppl.prior import ConstantPrior
>>> head = ConstantHead(ConstantPrior("uniform", -1.0, 2.0))
>>> c = head.sample(np.random.default_rng(0), 0.0, math.log(1.7))
>>> -1.0 < c < 2.0, math.isfinite(head.log_q(c, 0.0, math.log(1.7)))
(True, True)
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ppl.prior import ConstantPrior

__all__ = ["ConstantHead"]

LOG_2PI = math.log(2.0 * math.pi)


class ConstantHead:
    """The family-specific maps of a constant's proposal (see the module docstring).

    Parameters
    ----------
    prior : ConstantPrior
        The prior p_c of the constants.

    Examples
    --------
    >>> from ppl.prior import ConstantPrior
    >>> ConstantHead(ConstantPrior("normal", 0.0, 2.0)).fill
    0.0
    """

    def __init__(self, prior: ConstantPrior) -> None:
        self.family = prior.family
        """The prior's family: "normal", "laplace" or "uniform"."""
        self.a, self.b = prior.a, prior.b
        """The prior's location and scale (or interval)."""
        self.fill = 0.5 * (self.a + self.b) if self.family == "uniform" else 0.0
        """A value inside the support (padding of batched tensors)."""

    def params(self, raw_loc: torch.Tensor, raw_scale: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, log s) from the decoder's raw outputs (o_m, o_s).

        Examples
        --------
        >>> import torch
        >>> from ppl.prior import ConstantPrior
        >>> head = ConstantHead(ConstantPrior("normal", 1.0, 2.0))
        >>> m, log_s = head.params(torch.zeros(1), torch.zeros(1))
        >>> float(m[0]), round(float(log_s[0].exp()), 12)
        (1.0, 2.0)
        """
        if self.family == "uniform":
            return 3.0 * torch.tanh(raw_loc / 3.0), math.log(1.7) + torch.tanh(raw_scale)
        scale = self.b * math.sqrt(2.0) if self.family == "laplace" else self.b
        return self.a + self.b * raw_loc, math.log(scale) + 4.0 * torch.tanh(raw_scale / 4.0)

    def log_q(self, c: float, loc: float, log_scale: float) -> float:
        """log q(c) under Normal(loc, exp(log_scale)) (on the logit scale, with its
        Jacobian, for a uniform prior; −inf outside its interval).

        Examples
        --------
        >>> from ppl.prior import ConstantPrior
        >>> round(ConstantHead(ConstantPrior("normal", 0.0, 1.0)).log_q(0.0, 0.0, 0.0), 6)
        -0.918939
        """
        if self.family == "uniform":
            u = (c - self.a) / (self.b - self.a)
            if not 0.0 < u < 1.0:
                return -math.inf
            lu, l1u = math.log(u), math.log1p(-u)
            z = (lu - l1u - loc) / math.exp(log_scale)
            return (-0.5 * z * z - log_scale - 0.5 * LOG_2PI - math.log(self.b - self.a)
                    - lu - l1u)
        z = (c - loc) / math.exp(log_scale)
        return -0.5 * z * z - log_scale - 0.5 * LOG_2PI

    def log_q_torch(self, c: torch.Tensor, loc: torch.Tensor,
                    log_scale: torch.Tensor) -> torch.Tensor:
        """:meth:`log_q` elementwise on tensors, differentiable in ``loc``, ``log_scale``.

        Examples
        --------
        >>> import torch
        >>> from ppl.prior import ConstantPrior
        >>> head = ConstantHead(ConstantPrior("uniform", 0.0, 1.0))
        >>> lq = head.log_q_torch(torch.tensor([0.3]), torch.zeros(1), torch.zeros(1))
        >>> abs(float(lq[0]) - head.log_q(0.3, 0.0, 0.0)) < 1e-6
        True
        """
        if self.family == "uniform":
            u = ((c - self.a) / (self.b - self.a)).clamp(1e-300, 1.0 - 1e-16)
            lu, l1u = torch.log(u), torch.log1p(-u)
            z = (lu - l1u - loc) / torch.exp(log_scale)
            return (-0.5 * z * z - log_scale - 0.5 * LOG_2PI - math.log(self.b - self.a)
                    - lu - l1u)
        z = (c - loc) / torch.exp(log_scale)
        return -0.5 * z * z - log_scale - 0.5 * LOG_2PI

    def sample(self, rng: np.random.Generator, loc: float, log_scale: float) -> float:
        """One constant c ~ q (mapped into the interval for a uniform prior).

        Examples
        --------
        >>> import numpy as np
        >>> from ppl.prior import ConstantPrior
        >>> head = ConstantHead(ConstantPrior("normal", 0.0, 1.0))
        >>> abs(head.sample(np.random.default_rng(0), 5.0, -30.0) - 5.0) < 1e-9
        True
        """
        z = loc + math.exp(log_scale) * float(rng.standard_normal())
        if self.family != "uniform":
            return z
        e = math.exp(-abs(z))
        u = 1.0 / (1.0 + e) if z >= 0 else e / (1.0 + e)
        return self.a + (self.b - self.a) * u
