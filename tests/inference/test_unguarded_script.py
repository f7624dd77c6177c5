"""A script that calls ``infer`` at import time, without ``if __name__ == "__main__":``.

Parallel chains run in spawned worker processes, and a spawned worker imports the main
script: unguarded, the worker would start the run again and the pool broke with a
BrokenProcessPool traceback from deep inside concurrent.futures. The chains now run one
after another in the script's process, with a RunWarning naming the script's line; a
guarded call still runs in parallel. Both are checked on real scripts in subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MODEL = """
import numpy as np
import ppl
from inference import infer
from ppl import dist

x = np.linspace(0.0, 1.0, 8)
y = 2.0 * x

def model(x, y=None):
    f = ppl.sample("f", ppl.ProgramPrior("arith", inputs=["x"], max_depth=3))
    with ppl.plate("data", len(x)):
        ppl.sample("y", dist.Normal(f(x), 0.1), obs=y)
"""


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent(MODEL) + textwrap.dedent(body))
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_unguarded_script_runs_its_chains_in_sequence_with_a_warning(tmp_path: Path) -> None:
    out = run_script(tmp_path, """
        post = infer(model, x, y=y, num_chains=2, num_warmup=20, num_samples=20, seed=0,
                     progress=False)
        print("draws", post.samples["f"].shape)
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "draws (2, 20)" in out.stdout
    assert "BrokenProcessPool" not in out.stderr
    assert "ran one after another" in out.stderr
    assert "fit.py:15" in out.stderr  # the line of the unguarded call


def test_unguarded_call_reads_the_guard(tmp_path: Path) -> None:
    out = run_script(tmp_path, """
        from inference.mcmc.driver import unguarded_call
        print("top", unguarded_call())
        def inner():
            return unguarded_call()
        print("function", inner())
        if __name__ == "__main__":
            print("guarded", unguarded_call())
            try:
                print("guarded-in-try", inner())
            finally:
                pass
        else:
            pass
    """)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert lines["top"].endswith("fit.py:16")
    assert lines["function"].endswith("fit.py:19")
    assert lines["guarded"] == "None"
    assert lines["guarded-in-try"] == "None"


NUTS_MODEL = """
import numpy as np
import ppl
from inference import infer
from ppl import dist

y = np.array([0.3, 1.1, 2.2])

def model(y=None):
    mu = ppl.sample("mu", dist.Normal(0.0, 10.0))
    with ppl.plate("data", 3):
        ppl.sample("y", dist.Normal(mu, 1.0), obs=y)
"""
NUTS_CALL = """import inference._nuts_pyro as backend
backend.PARALLEL_ITERATIONS = 200  # this run's size: large enough for worker processes
post = infer(model, y=y, method="nuts", backend="pyro", num_chains=2,
             num_warmup=50, num_samples=50, seed=0, progress=False)
print("ran", post.attrs["chain_method"], post.samples["mu"].shape)
"""


def test_pyro_nuts_chains_in_an_unguarded_script_run_in_sequence(tmp_path: Path) -> None:
    """A Pyro NUTS run large enough for worker processes, in a script: unguarded, its chains
    run in the script's process with the RunWarning naming the line; guarded, in workers."""
    script = tmp_path / "nuts_fit.py"
    for guarded in (False, True):
        call = NUTS_CALL if not guarded else (
            'if __name__ == "__main__":\n' + textwrap.indent(NUTS_CALL, "    "))
        script.write_text(textwrap.dedent(NUTS_MODEL) + call)
        out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                             text=True, timeout=300,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert out.returncode == 0, out.stderr[-2000:]
        assert "BrokenProcessPool" not in out.stderr
        if guarded:
            assert "ran parallel (2, 50)" in out.stdout
            assert "ran one after another" not in out.stderr
        else:
            assert "ran sequential (2, 50)" in out.stdout
            assert "ran one after another" in out.stderr
            assert "nuts_fit.py:15:" in out.stderr  # the line of the unguarded call
