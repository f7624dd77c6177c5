"""The command line, ``ppl``: from a CSV file to a law.

``ppl fit data.csv --target y`` reads the table, runs program MCMC on the standard model of
y ≈ f(inputs) (:func:`ppl.regression`, a grammar prior on f) and prints the most probable
laws with their probabilities and their constants' intervals, R-hat, and whether the time
budget cut the run; it writes the run (NetCDF, :meth:`~inference.Posterior.save`) and a
figure of the fit. ``ppl show run.nc`` prints the same from a saved run, ``ppl predict
run.nc new.csv`` writes posterior predictive means and intervals at new inputs, and ``ppl
grammars`` lists the bundled grammars with an example program each.

Exit codes: 0 done, 2 bad input (a missing column, a non-numeric cell, a missing value, an
unknown grammar: the message names it, and nothing is written), 1 any other failure.

Examples
--------
>>> import contextlib, io
>>> out = io.StringIO()
>>> with contextlib.redirect_stdout(out):
...     code = main(["grammars"])
>>> code, "arith" in out.getvalue()
(0, True)
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import ppl
from inference.api import RunWarning, infer
from inference.plots import plot_predictive, short_text
from inference.results import Posterior, load
from ppl.errors import PPLError
from ppl.evaluate import evaluate_draws

__all__ = ["CliError", "main", "predict_table", "read_table", "report"]

BAD_INPUT = 2
"""Exit code for bad input (argparse's own code for bad usage)."""


class CliError(PPLError):
    """Bad input to the command line: names the file, column or row."""


def read_table(path: str | Path, target: str | None, inputs: Sequence[str] | None = None
               ) -> tuple[list[str], list[np.ndarray], np.ndarray | None]:
    """The input columns' names and values and the target's values (None without a
    target) of the CSV file ``path``; ``inputs`` None: every column but the target. Raises
    :class:`CliError` naming the file, column and row of what is wrong.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "d.csv"
    >>> _ = path.write_text("x,y\\n1,2\\n2,oops\\n")
    >>> try:
    ...     read_table(path, "y")
    ... except CliError as err:
    ...     print(str(err).split(": ", 1)[1])
    column 'y' is not numeric: row 2 holds 'oops'.
    """
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise CliError(f"No file {str(path)!r}.") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise CliError(f"{path}: not a readable CSV file ({err}).") from None
    columns = [str(c) for c in frame.columns]
    if target is not None and target not in columns:
        raise CliError(f"{path}: no target column {target!r}; the columns are {columns}.")
    names = list(inputs) if inputs else [c for c in columns if c != target]
    missing = [c for c in names if c not in columns]
    if missing:
        raise CliError(f"{path}: no input column {missing[0]!r}; the columns are {columns}.")
    if len(frame) < 2:
        raise CliError(f"{path}: {len(frame)} data row(s); at least 2 are needed.")
    values = {c: _numeric(path, frame[c]) for c in [*names, *([target] if target else [])]}
    return names, [values[c] for c in names], None if target is None else values[target]


def _numeric(path: str | Path, column: pd.Series) -> np.ndarray:
    """A column as float64; CliError naming the first non-numeric or missing cell (data
    rows count from 1 after the header)."""
    numbers = pd.to_numeric(column, errors="coerce")
    text = numbers.isna() & column.notna()
    if text.any():
        row = int(np.flatnonzero(text.to_numpy())[0])
        raise CliError(f"{path}: column {column.name!r} is not numeric: row {row + 1} holds "
                       f"{column.iloc[row]!r}.")
    values = numbers.to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        rows = ", ".join(str(r + 1) for r in bad[:5]) + (", ..." if bad.size > 5 else "")
        raise CliError(f"{path}: column {column.name!r} has {bad.size} missing or infinite "
                       f"value(s), in row(s) {rows}; drop or fill them.")
    return np.asarray(values)


def report(post: Posterior, top: int = 5, file: Any = None) -> None:
    """Print a run's summary: its plan and size, the ``top`` laws (probability, program,
    its simplified form, the constants' 90% intervals), R-hat of the log joint and of the
    noise scale, and the time budget's cut if any (``post.attrs["notes"]``).

    Examples
    --------
    >>> import numpy as np, ppl
    >>> from inference import infer
    >>> x = np.linspace(-1, 1, 8)
    >>> model = ppl.regression(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2),
    ...                        sigma=0.1)
    >>> report(infer(model, x, y=x + 1.0, method="enumerate", num_chains=1), top=1)
    enumerate: 1 chain(s) x 1000 draws
    <BLANKLINE>
    Top laws (probability, program; constants' 90% intervals):
       1.000  (1 + x)
              = x + 1.0
    """
    out = sys.stdout if file is None else file
    plan = post.attrs.get("plan", post.method)
    print(f"{plan}: {post.num_chains} chain(s) x {post.num_draws} draws", file=out)
    print("\nTop laws (probability, program; constants' 90% intervals):", file=out)
    table = post.programs(top=top)
    for row in table.itertuples():
        print(f"  {row.probability:6.3f}  {short_text(row.program, width=200)}", file=out)
        if str(row.simplified) != str(row.program):
            print(f"          = {row.simplified}", file=out)
        if row.constants:
            print(f"          {row.constants}", file=out)
    rhat = _rhat(post)
    if rhat:
        print("\nR-hat: " + ", ".join(f"{k} {v:.3f}" for k, v in rhat.items()), file=out)
    for note in post.attrs.get("notes", []):
        print(f"Note: {note}", file=out)


def _rhat(post: Posterior) -> dict[str, float]:
    if post.num_chains < 2:
        return {}
    from inference._arviz import az

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, values in (("lp", post.stats.get("lp")), ("sigma", post.samples.get("sigma"))):
            if values is not None and np.asarray(values).dtype != object:
                rhat: Any = az.rhat  # untyped in ArviZ
                out[name] = float(rhat(np.asarray(values, dtype=np.float64)))
    return out


def predict_table(post: Posterior, frame: pd.DataFrame, prob: float = 0.9,
                  num_draws: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Posterior predictive at the rows of ``frame`` (one column per input of the run's
    program site, by name) from a saved run, without its model: each of ``num_draws``
    draws' program evaluated there, plus Normal noise of its ``sigma`` draw (or none). The
    table adds ``mean`` (of f), ``lower``/``upper`` (the central ``prob`` interval of y) to
    the input columns.

    Examples
    --------
    >>> import numpy as np, pandas as pd, ppl
    >>> from inference import infer
    >>> x = np.linspace(-1, 1, 8)
    >>> model = ppl.regression(ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2),
    ...                        sigma=0.1)
    >>> post = infer(model, x, y=x + 1.0, method="enumerate", num_chains=1)
    >>> predict_table(post, pd.DataFrame({"x": [0.0, 2.0]}))["mean"].round(3).tolist()
    [1.0, 3.0]
    """
    site = post.program_site()
    programs = post.samples[site].reshape(-1)
    sigma = post.samples.get("sigma")
    sigmas = None if sigma is None else np.asarray(sigma, dtype=np.float64).reshape(-1)
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(programs), size=min(num_draws, len(programs)), replace=False)
    inputs = list(programs[0].inputs)
    columns = [np.asarray(frame[c], dtype=np.float64) for c in inputs]
    fs = evaluate_draws(programs[idx], columns, len(frame))
    ys = fs if sigmas is None else fs + sigmas[idx, None] * rng.standard_normal(fs.shape)
    tail = (1.0 - prob) / 2
    table = frame[inputs].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        table["mean"] = np.nanmean(fs, axis=0)
        table["lower"] = np.nanquantile(ys, tail, axis=0)
        table["upper"] = np.nanquantile(ys, 1.0 - tail, axis=0)
    return table


# ------------------------------------------------------------------------ commands
def _fit(args: argparse.Namespace) -> int:
    inputs = [s.strip() for s in args.inputs.split(",")] if args.inputs else None
    names, columns, y = read_table(args.data, args.target, inputs)
    assert y is not None
    grammar: Any = Path(args.grammar) if args.grammar.endswith(".lark") else args.grammar
    prior = ppl.ProgramPrior(grammar, inputs=names, max_depth=args.depth)
    scale = float(np.std(y)) or float(np.max(np.abs(y))) or 1.0
    if args.noise == "auto":
        model = ppl.regression(prior, scale=scale)
    else:
        model = ppl.regression(prior, sigma=_positive("--noise", args.noise))
    notes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunWarning)
        post = infer(model, *columns, y=y, num_chains=args.chains, max_time=args.time or None,
                     num_samples=args.samples, seed=args.seed, progress=False)
    notes = [str(w.message).splitlines()[0] for w in caught
             if issubclass(w.category, RunWarning)]
    post.attrs["notes"] = notes
    report(post, top=args.top)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    post.save(str(out))
    figure = Path(args.figure) if args.figure else out.with_suffix(".png")
    x = columns[0] if len(columns) == 1 else dict(zip(names, columns, strict=True))
    plot_predictive(post, x, y, figure)
    print(f"\nWrote {out} and {figure}.")
    return 0


def _show(args: argparse.Namespace) -> int:
    report(_load(args.run), top=args.top)
    return 0


def _predict(args: argparse.Namespace) -> int:
    post = _load(args.run)
    site = post.program_site()
    inputs = list(post.samples[site].reshape(-1)[0].inputs)
    _, columns, _ = read_table(args.data, None, inputs)
    frame = pd.DataFrame(dict(zip(inputs, columns, strict=True)))
    table = predict_table(post, frame, prob=args.prob, seed=args.seed)
    if args.out:
        table.to_csv(args.out, index=False)
        print(f"Wrote {len(table)} predictions to {args.out}.")
    else:
        table.to_csv(sys.stdout, index=False)
    return 0


def _grammars(args: argparse.Namespace) -> int:
    for name in ppl.bundled_grammars():
        text = ppl.Grammar.load(name).text
        comments = [line[2:].strip() for line in text.splitlines() if line.startswith("//")]
        example = next((c.split(":", 1)[1].strip() for c in comments
                        if c.startswith("Example program:")), "")
        about = " ".join(c for c in comments if not c.startswith("Example program:"))
        summary = about.split(":", 1)[-1].strip().split(". ")[0].rstrip(".")
        print(f"{name:8s} {summary}\n         example: {example}")
    return 0


def _load(path: str) -> Posterior:
    if not Path(path).exists():
        raise CliError(f"No run file {path!r} (ppl fit ... --out writes one).")
    try:
        return load(path)
    except PPLError:
        raise
    except Exception as err:  # not NetCDF, or not a run of ours
        raise CliError(f"{path}: not a saved run ({type(err).__name__}: {err}).") from None


def _positive(flag: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise CliError(f"{flag} must be 'auto' or a positive number; got {text!r}.")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppl", description="From a CSV file to a law: "
                                     "a posterior over programs.")
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser("fit", help="find the law behind a CSV file")
    fit.add_argument("data", help="CSV file with a header row")
    fit.add_argument("--target", required=True, help="the output column")
    fit.add_argument("--inputs", help="input columns, comma-separated (default: all others)")
    fit.add_argument("--grammar", default="arith", help="a bundled grammar or a .lark file")
    fit.add_argument("--depth", type=int, default=4, help="the programs' maximum depth (4)")
    fit.add_argument("--time", type=float, default=60.0,
                     help="seconds per chain (60); 0: no budget, --samples draws per chain")
    fit.add_argument("--noise", default="auto", help="'auto' (learned) or a known sd")
    fit.add_argument("--chains", type=int, default=4, help="chains (4)")
    fit.add_argument("--samples", type=int, default=1000, help="draws per chain (1000)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--top", type=int, default=5, help="laws to print (5)")
    fit.add_argument("--out", default="run.nc", help="the run's file (run.nc)")
    fit.add_argument("--figure", help="the figure's file (default: the run's, .png)")
    fit.set_defaults(handler=_fit)
    show = commands.add_parser("show", help="print a saved run's laws")
    show.add_argument("run")
    show.add_argument("--top", type=int, default=5)
    show.set_defaults(handler=_show)
    predict = commands.add_parser("predict", help="posterior predictive at new inputs")
    predict.add_argument("run")
    predict.add_argument("data", help="CSV file with the run's input columns")
    predict.add_argument("--prob", type=float, default=0.9, help="interval mass (0.9)")
    predict.add_argument("--seed", type=int, default=0)
    predict.add_argument("--out", help="CSV file to write (default: standard output)")
    predict.set_defaults(handler=_predict)
    grammars = commands.add_parser("grammars", help="list the bundled grammars")
    grammars.set_defaults(handler=_grammars)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); the exit code."""
    args = _parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except PPLError as err:
        print(f"ppl {args.command}: error: {err}", file=sys.stderr)
        return BAD_INPUT
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
