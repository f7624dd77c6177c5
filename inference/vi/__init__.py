"""Variational inference: ``infer(..., method="svi")``.

DESIGN.md §5, "Variational": the backends' own SVI fits an autoguide (or the user's guide)
to the posterior of a model's continuous latent sites; with program sites (``backend=
"pyro"`` only), a grammar guide with learnable context-dependent production logits is
fitted jointly with the continuous sites by score-function gradients. The result reports
the Pareto k̂ of the guide's importance weights, the honest measure of how much of the
posterior the guide missed (TESTING.md P7).

- :mod:`inference.vi.svi`: :func:`run_svi` (the method), :func:`pareto_khat`;
- :mod:`inference.vi.guides`: the guide names (:data:`AUTOGUIDES`) and their checks;
- :mod:`inference.vi.programs`: the program guide (``ProgramGuide``), the constants' and
  continuous sites' Normal guides;
- :mod:`inference.vi.program_fit`: their training (score-function ELBO gradients with a
  leave-one-out baseline) and draws;
- :mod:`inference.vi.fit`: the optimisation loop (windows, convergence, ``max_time``,
  progress, checkpoints) shared by every path;
- :mod:`inference.vi.checkpoint`: ``checkpoint=`` and :func:`inference.resume` for SVI.

Examples
--------
>>> import numpy as np
>>> import ppl
>>> from ppl import dist
>>> from inference import infer
>>> def model(y=None):
...     mu = ppl.sample("mu", dist.Normal(0.0, 10.0))
...     with ppl.plate("data", len(y)):
...         ppl.sample("y", dist.Normal(mu, 1.0), obs=y)
>>> y = np.array([0.5, 1.5, 1.0, 1.0])
>>> post = infer(model, y=y, method="svi", num_steps=1000, num_samples=500, num_chains=2,
...              seed=1, progress=False)
>>> # exact posterior: mean 3.9996 / 4.01 = 0.997, sd 1 / sqrt(4.01) = 0.499
>>> round(float(post.samples["mu"].mean()), 1), round(float(post.samples["mu"].std()), 1)
(1.0, 0.5)
"""

from inference.vi.guides import AUTOGUIDES, GuideError
from inference.vi.svi import pareto_khat, run_svi

__all__ = ["AUTOGUIDES", "GuideError", "pareto_khat", "run_svi"]
