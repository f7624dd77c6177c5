"""The cost of one sweep of the default kernel on a B1 problem, and where it goes.

The model is the user's default (:func:`ppl.regression`, the B1 harness's model) on one
problem's data (20 points, the harness's seed); the kernel runs directly (``Target``,
``Gibbs``, ``init``, ``step``) in one process with one torch thread: ``--warmup`` adaptive
sweeps, then ``--sweeps`` timed sweeps in CPU seconds of the process (other load on the
machine does not count), then the same number again under cProfile, whose shares of
``Gibbs.step`` are printed for the blocks and the hot functions.

``--search`` times the search phase of a timed run instead (:mod:`inference.mcmc.search`:
the default four walkers on the geometric ladder, patience 50, ``--sweeps`` population
sweeps, each walker one sweep, with the search's joint noise moves): CPU ms per population
sweep, restarts included.

``--options JSON`` gives the kernel other options (``McmcOptions``), e.g.
``--options '{"library_tries": 32, "structure_weights": {"library": 1.0}}'``.

``--before DIR`` runs the same measurement on an earlier source tree (a subprocess with
``DIR`` first on ``sys.path``), alternating with this tree ``--repeats`` times, so the two
are timed side by side under the same load::

    python -m benchmarks.sweep_profile --problem Nguyen-1 --grammar koza --before ../before

Examples
--------
>>> row = measure("Nguyen-1", "koza", seed=0, warmup=5, sweeps=5, profile=False)
>>> row["sweeps"], row["ms_per_sweep"] > 0
(5, True)
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import time
from typing import Any

__all__ = ["SHARES", "main", "measure", "measure_search"]

SHARES = {
    "program block": ("program.py", "step"),
    "noise block": ("noise.py", "step"),
    "views (built or derived)": ("base.py", "view"),
    "model runs (recorded)": ("target.py", "record"),
    "library move": ("semantic.py", "library"),
    "prior log density": ("prior.py", "log_density"),
    "Program.key": ("program.py", "key"),
    "Program.heights": ("program.py", "heights"),
    "log L (numpy)": ("fastlik.py", "log_lik"),
    "Laplace solves": ("laplace.py", "levenberg_marquardt"),
}
"""Rows of the profile: a label and the (file, function) whose cumulative time it is."""


def measure(problem: str, grammar: str, seed: int = 0, warmup: int = 200, sweeps: int = 300,
            profile: bool = True, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """ms per sweep of the default kernel (CPU time) and, with ``profile``, the shares of
    :data:`SHARES` in a profiled stretch of the same length."""
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from inference.config import McmcOptions
    from inference.mcmc.gibbs import Gibbs
    from inference.target import Target

    torch.set_num_threads(1)
    threadpool_limits(limits=1)  # one BLAS thread, as a chain runs (driver.run_chain)
    model, columns, y = _problem(problem, grammar, seed)
    kernel = Gibbs(Target(model, columns, {"y": y}, seed=seed), McmcOptions(**(options or {})))
    rng = np.random.default_rng(seed)
    state = kernel.init(rng)
    for _ in range(warmup):
        state, _ = kernel.step(rng, state, adapt=True)
    start = time.process_time()
    for _ in range(sweeps):
        state, _ = kernel.step(rng, state)
    seconds = time.process_time() - start
    row: dict[str, Any] = {"problem": problem, "grammar": grammar, "seed": seed,
                           "sweeps": sweeps, "ms_per_sweep": 1e3 * seconds / sweeps,
                           "plan": kernel.describe()}
    if profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(sweeps):
            state, _ = kernel.step(rng, state)
        prof.disable()
        cum: dict[tuple[str, str], float] = {}
        for (path, _, name), entry in pstats.Stats(prof).stats.items():  # type: ignore[attr-defined]
            key = (os.path.basename(path), name)
            cum[key] = max(cum.get(key, 0.0), entry[3])
        total = cum.get(("gibbs.py", "step"), 0.0) or 1.0
        row["shares"] = {label: cum.get(where, 0.0) / total for label, where in SHARES.items()}
    return row


def _problem(problem: str, grammar: str, seed: int) -> tuple[Any, tuple[Any, ...], Any]:
    """(model, columns, y) of a B1 problem's noiseless data under ``ppl.regression``."""
    import numpy as np

    import ppl
    from benchmarks.nguyen_protocol import MAX_DEPTH, PROBLEMS, make_data

    spec = PROBLEMS[problem]
    X, y, _ = make_data(spec, seed, 0.0)
    prior = ppl.ProgramPrior(grammar, inputs=list(spec.inputs), max_depth=MAX_DEPTH)
    return (ppl.regression(prior, float(np.std(y))),
            tuple(X[:, i].copy() for i in range(X.shape[1])), y)


def measure_search(problem: str, grammar: str, seed: int = 0, sweeps: int = 300
                   ) -> dict[str, Any]:
    """CPU ms per population sweep of the search phase (module docstring)."""
    import numpy as np
    import torch
    from threadpoolctl import threadpool_limits

    from inference.config import McmcOptions
    from inference.mcmc.gibbs import Gibbs
    from inference.mcmc.search import search
    from inference.mcmc.tempering import geometric_ladder
    from inference.target import Target

    torch.set_num_threads(1)
    threadpool_limits(limits=1)  # one BLAS thread, as a chain runs (driver.run_chain)
    model, columns, y = _problem(problem, grammar, seed)
    options = McmcOptions()
    walker = McmcOptions(joint_noise=options.search_joint_noise)  # as the driver's search
    rng = np.random.default_rng(seed)
    kernels = [Gibbs(Target(model, columns, {"y": y}, seed=seed, beta=float(b)), walker)
               for b in geometric_ladder(options.search_rungs, options.search_beta_min)]
    states = [k.init(rng) for k in kernels]
    start = time.process_time()
    _, found = search(rng, kernels, states, seconds=1e9, patience=options.search_patience,
                      max_sweeps=sweeps)
    seconds = time.process_time() - start
    return {"problem": problem, "grammar": grammar, "seed": seed, "sweeps": found.sweeps,
            "ms_per_sweep": 1e3 * seconds / max(found.sweeps, 1),
            "restarts": found.restarts, "best": str(found.values["f"]),
            "plan": "search: " + kernels[0].describe(), "shares": {}}


def _run_tree(tree: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in a subprocess: this file's code, with ``tree``'s library (or this
    tree's) first on sys.path."""
    from benchmarks.trees import call_in_tree  # here: an earlier tree may lack the module

    kwargs = {"problem": args.problem, "grammar": args.grammar, "seed": args.seed,
              "sweeps": args.sweeps, **({} if args.search else {"warmup": args.warmup}),
              **({"options": json.loads(args.options)} if args.options else {})}
    return call_in_tree(tree, __file__, "measure_search" if args.search else "measure",
                        kwargs)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problem", default="Nguyen-1")
    parser.add_argument("--grammar", default="koza")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--sweeps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--before", default=None, help="an earlier source tree")
    parser.add_argument("--search", action="store_true", help="time the search phase")
    parser.add_argument("--options", default=None,
                        help='McmcOptions of the kernel as JSON, e.g. \'{"library_tries": 32}\'')
    args = parser.parse_args(argv)
    if args.options and (args.search or args.before):
        parser.error("--options applies to this tree's kernel (not --search, not --before)")
    rows = []
    from benchmarks.trees import alternating  # here: an earlier tree may lack the module

    for label, tree in alternating(args.before, args.repeats):
        row = _run_tree(tree, args) | {"tree": label}
        rows.append(row)
        shares = ", ".join(f"{k} {v:.0%}" for k, v in row["shares"].items() if v >= 0.005)
        extra = f"; {row['restarts']} restarts, best {row['best']}" if args.search else ""
        print(f"{label:10s} {row['ms_per_sweep']:.2f} ms/sweep ({row['plan']}); "
              f"{shares}{extra}")
    return rows


if __name__ == "__main__":
    main()
