"""ArviZ for code outside the package: ``from inference.arviz import az``.

``az`` is the ``arviz`` module as :mod:`inference._arviz` (the one module that imports
ArviZ) imports it: with ArviZ 0.23's 1.x-migration ``FutureWarning`` silenced. Examples,
benchmarks and users take it from here to run ArviZ's diagnostics on a
:class:`~inference.Posterior` (``az.rhat``, ``az.ess``, ``az.loo`` of ``post.to_arviz()``);
a plain ``import arviz as az`` works the same, with the warning.

Examples
--------
>>> import numpy as np
>>> from inference.arviz import az
>>> draws = np.random.default_rng(0).normal(size=(2, 500))  # (chain, draw)
>>> bool(az.rhat(draws) < 1.01)
True
"""

from inference._arviz import az

__all__ = ["az"]
