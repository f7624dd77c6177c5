"""inference: the algorithms that answer queries on ``ppl`` models.

Examples
--------
>>> import numpy as np
>>> import ppl
>>> from ppl import dist
>>> from inference import infer
>>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
>>> def model(x, y=None):
...     f = ppl.sample("f", prior)
...     with ppl.plate("data", len(x)):
...         ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)
>>> x = np.linspace(-1, 1, 8)
>>> post = infer(model, x, y=np.sin(x), method="enumerate")
>>> law = post.best("f")        # a ppl.Program, inputs in the prior's order
>>> law
Program('sin(x)')
>>> float(law(0.5)) == float(np.sin(0.5))
True
"""

from inference.api import infer, resume
from inference.compare import compare
from inference.compare_plot import plot_compare
from inference.estimator import SymbolicRegressor
from inference.query import query
from inference.results import Posterior, load

__all__ = ["Posterior", "SymbolicRegressor", "compare", "infer", "load", "plot_compare", "query",
           "resume"]
