"""The world model: a model's sites and their dependencies as a factor graph (DESIGN §1).

``World(model, *args, **kwargs)`` runs the model once on its arguments and records every
site (a named random choice) with the sites its definition reads. The result is a bipartite
graph of *variables* (one per site) and *factors* (one per term of the log joint):

    log p(x, y, φ, θ) = Σ_sites log p(site | parents(site)) + Σ_factor statements log ψ

A sample site ``y`` gives the factor ``p(y)``, joined to ``y`` and to y's parents; a
``ppl.factor`` statement is a factor alone, joined to the sites its log-factor reads; a
``ppl.deterministic`` site is a variable whose factor ``p(theta)`` is a point mass at a
function of its parents. The graph answers the questions inference asks of a model's
structure: which sites a site depends on, which factors change when it changes (its Markov
blanket), and what the model's log density is at given values.

The sites are found, classified and their data checked by :func:`ppl.trace.discover`, the
discovery run inference makes too. Dependencies are found by provenance tracking
(:mod:`ppl._tracer`), which follows values through the model's tensor arithmetic and through
calls of program-valued sites. The graph is that of the traced run: World assumes that the
model's structure (which sites exist, what they read) does not depend on the values drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import torch
from pyro import poutine

from ppl import backend
from ppl._tracer import ProvenanceTracer
from ppl.backend import to_torch
from ppl.errors import ModelError, PPLError, SiteError
from ppl.prior import ProgramPrior
from ppl.program import BoundProgram, Program
from ppl.trace import (
    DETERMINISTIC,
    FACTOR,
    PROGRAM,
    Site,
    base_distribution,
    discover,
    log_joint,
    seeded,
    sites_of,
    trace_model,
)

__all__ = ["World"]

SEED = 0
"""Seed of the traced run (a seeded quiet run, :func:`ppl.trace.seeded`: the global RNG is
untouched)."""


def _label(site: Site) -> str:
    """Short description of a site's distribution, e.g. "Normal", "ProgramPrior(arith)"."""
    if site.kind in (DETERMINISTIC, FACTOR):
        return site.kind
    base = base_distribution(site.fn)
    if isinstance(base, ProgramPrior):
        return f"ProgramPrior({base.grammar.name.removesuffix('.lark')})"
    return type(base).__name__


class World:
    """The factor graph of ``model(*args, **kwargs)``, traced from one run of the model.

    Parameters
    ----------
    model : callable
        A model written with ``ppl.sample`` (or ``pyro.sample``); traced with the Pyro
        backend. Observed sites are those given ``obs=``.
    *args, **kwargs
        The model's arguments; numpy arrays and lists of numbers become float64 tensors.
        Latent sites take values drawn from the model (seed 0, the global RNG untouched; a
        site that cannot sample, such as ``ImproperUniform``, takes a point of its support:
        :func:`ppl.trace.discover`).

    Attributes
    ----------
    graph : networkx.Graph
        Bipartite: nodes of ``kind`` "variable" (one per site, named by the site, with
        ``site_type``, ``observed``, ``shape``, ``plates``, ``distribution``) and "factor"
        (``"p(y)"`` for site y, or the name of a ``factor`` statement, with ``site`` (None
        for a statement), ``parents`` and ``distribution``). Edges have ``role`` "site"
        (factor p(y) to y) or "parent".
    model, args, kwargs
        The model and its (converted) arguments.

    Raises
    ------
    ModelError
        When the model raises while it is traced.
    DataError
        When observed data are empty, not finite, or of another shape than their
        distribution (:func:`ppl.trace.check_observed`).

    Examples
    --------
    >>> import numpy as np
    >>> import ppl
    >>> from ppl import dist
    >>> prior = ppl.ProgramPrior("tiny", inputs=["x"], max_depth=2)
    >>> def model(x, y=None):
    ...     f = ppl.sample("f", prior)
    ...     sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    ...     with ppl.plate("data", len(x)):
    ...         ppl.sample("y", dist.Normal(f(x), sigma), obs=y)
    >>> x = np.linspace(0.0, 1.0, 5)
    >>> world = ppl.World(model, x, y=x + 1.0)
    >>> world.sites, sorted(world.parents("y")), sorted(world.markov_blanket("f"))
    (['f', 'sigma', 'y'], ['f', 'sigma'], ['sigma', 'y'])
    >>> f = prior.grammar.parse("(x + 1)")
    >>> round(world.log_density({"f": f, "sigma": 0.5}), 4)
    -5.431
    """

    def __init__(self, model: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        if not callable(model):
            raise ModelError(f"World needs a model function; got {type(model).__name__}.")
        self.model = model
        self.args = tuple(to_torch(a) for a in args)
        self.kwargs = {k: to_torch(v) for k, v in kwargs.items()}
        found = self._run("Tracing", lambda: discover(model, self.args, self.kwargs,
                                                      seed=SEED))
        self._records: dict[str, Site] = found.sites
        parents = self._trace_parents(found.trace)
        order = list(self._records)
        self._parents: dict[str, tuple[str, ...]] = {
            name: tuple(n for n in order if n in parents[name]) for name in order}
        """Site (or factor statement) -> the sites it reads directly, in execution order."""
        self.graph: nx.Graph = self._build_graph()
        self._dag: nx.DiGraph = nx.DiGraph()
        self._dag.add_nodes_from(self.sites)
        self._dag.add_edges_from((p, s) for s in self.sites for p in self._parents[s])

    # ------------------------------------------------------------------ tracing
    @property
    def model_name(self) -> str:
        """The model's qualified name (its ``repr`` if it has none).

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> world.model_name
        'chain'
        """
        return str(getattr(self.model, "__qualname__", None) or repr(self.model))

    def _run(self, what: str, run: Callable[[], Any]) -> Any:
        """``run()`` with the Pyro backend in a seeded quiet run (seed :data:`SEED`); a
        failure of the model becomes a :class:`ModelError` naming it."""
        try:
            with backend.use("pyro"), seeded(SEED):
                return run()
        except PPLError:
            raise
        except Exception as err:  # the model is user code: any error is the model's
            detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
            raise ModelError(f"{what} the model '{self.model_name}' failed with {detail}. "
                             "Run the model by hand on the same arguments to see where."
                             ) from err

    def _trace_parents(self, trace: Any) -> dict[str, frozenset[str]]:
        """Direct parents of every site, by replaying ``trace`` under provenance tracking."""
        tracer = ProvenanceTracer()

        def run() -> None:
            with torch.no_grad(), tracer:
                poutine.replay(self.model, trace=trace)(*self.args, **self.kwargs)

        self._run("Tracing the dependencies of", run)
        names = list(self._records)
        if list(tracer.parents) != names:
            raise ModelError(f"The model '{self.model_name}' made different sites when replayed "
                             f"({list(tracer.parents)} instead of {names}): World needs a "
                             "model whose sites do not depend on the values drawn.")
        return tracer.parents

    def _build_graph(self) -> nx.Graph:
        graph = nx.Graph()
        for s in self.sites:
            r = self._records[s]
            graph.add_node(s, kind="variable", site_type=r.kind, observed=r.observed,
                           shape=r.shape, plates=r.plates, distribution=_label(r))
        for r in self._records.values():
            name = r.name if r.kind == FACTOR else f"p({r.name})"
            if name in graph:
                raise ModelError(f"The factor of site '{r.name}' would be named {name!r}, "
                                 "which is also a site's name: rename that site.")
            graph.add_node(name, kind="factor", site=None if r.kind == FACTOR else r.name,
                           parents=self._parents[r.name], distribution=_label(r))
            if r.kind != FACTOR:
                graph.add_edge(name, r.name, role="site")
            graph.add_edges_from(((name, p) for p in self._parents[r.name]), role="parent")
        return graph

    # ------------------------------------------------------------------ sites
    @property
    def sites(self) -> list[str]:
        """Every site (variable) in execution order; factor statements are not sites.

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> world.sites
        ['a', 'b', 'c']
        """
        return [n for n, r in self._records.items() if r.kind != FACTOR]

    @property
    def observed(self) -> list[str]:
        """The observed sites (given ``obs=``), in execution order.

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> world.observed, world.is_observed("c")
        (['c'], True)
        """
        return [n for n, r in self._records.items() if r.observed]

    @property
    def latent(self) -> list[str]:
        """The latent sites: neither observed nor deterministic, in execution order.

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> world.latent
        ['a', 'b']
        """
        return [n for n, r in self._records.items()
                if not r.observed and r.kind not in (DETERMINISTIC, FACTOR)]

    @property
    def factors(self) -> list[str]:
        """Every factor node, in execution order: ``"p(site)"`` per site, and the names of
        ``factor`` statements.

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> world.factors
        ['p(a)', 'p(b)', 'p(c)']
        """
        return [n for n, d in self.graph.nodes(data=True) if d["kind"] == "factor"]

    def _site(self, name: str) -> Site:
        record = self._records.get(name) if isinstance(name, str) else None
        if record is None or record.kind == FACTOR:
            hint = (f" '{name}' is a factor statement, a factor node of .graph, not a site."
                    if record is not None else "")
            raise SiteError(f"The model '{self.model_name}' has no site {name!r}; its sites are "
                            f"{self.sites}.{hint}")
        return record

    def kind(self, site: str) -> str:
        """The site's type: "program", "continuous", "discrete" or "deterministic".

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> world.kind("a")
        'continuous'
        """
        return self._site(site).kind

    def is_observed(self, site: str) -> bool:
        """Whether the site is observed (given ``obs=``).

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> world.is_observed("a"), world.is_observed("c")
        (False, True)
        """
        return self._site(site).observed

    def distribution(self, site: str) -> Any:
        """The site's distribution (``fn``) in the traced run.

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> type(world.distribution("b")).__name__, float(world.distribution("c").scale)
        ('Normal', 1.0)
        """
        return self._site(site).fn

    def value(self, site: str) -> Any:
        """The site's value in the traced run: a tensor, or a Program for program sites.

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> world.value("c")
        tensor(0.5000)
        """
        return self._site(site).value

    def parents(self, site: str) -> set[str]:
        """The sites the site's distribution (or deterministic value) reads directly.

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> world.parents("b"), world.parents("a")
        ({'a'}, set())
        """
        return set(self._parents[self._site(site).name])

    def children(self, site: str) -> set[str]:
        """The sites that read the site directly (factor statements are not sites).

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> world.children("a")
        {'b'}
        """
        self._site(site)
        return set(self._dag.successors(site))

    def ancestors(self, site: str) -> set[str]:
        """Every site the site depends on, directly or through other sites.

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> sorted(world.ancestors("c"))
        ['a', 'b']
        """
        self._site(site)
        return set(nx.ancestors(self._dag, site))

    def descendants(self, site: str) -> set[str]:
        """Every site that depends on the site, directly or through other sites.

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> sorted(world.descendants("a"))
        ['b', 'c']
        """
        self._site(site)
        return set(nx.descendants(self._dag, site))

    def factors_of(self, site: str) -> list[str]:
        """The factors whose value changes when ``site`` changes: p(site), and the factor
        of every site or factor statement that reads it, directly or through deterministic
        sites. The log joint's change under a move of ``site`` is the change of their sum.

        Examples
        --------
        >>> import torch, ppl
        >>> from ppl import dist
        >>> def model():
        ...     a = ppl.sample("a", dist.Normal(0.0, 1.0))
        ...     b = ppl.deterministic("b", 2 * a)
        ...     ppl.sample("c", dist.Normal(b, 1.0), obs=torch.tensor(0.0))
        >>> ppl.World(model).factors_of("a")
        ['p(a)', 'p(b)', 'p(c)']
        """
        self._site(site)
        found = {self._factor_name(site)}
        stack = [site]
        while stack:
            s = stack.pop()
            for r in self._records.values():
                if s in self._parents[r.name] and self._factor_name(r.name) not in found:
                    found.add(self._factor_name(r.name))
                    if r.kind == DETERMINISTIC:
                        stack.append(r.name)
        return [f for f in self.factors if f in found]

    def _factor_name(self, name: str) -> str:
        return name if self._records[name].kind == FACTOR else f"p({name})"

    def markov_blanket(self, site: str) -> set[str]:
        """The sites whose values, with the site's own, fix every factor of
        :meth:`factors_of`: its parents, its children and its children's other parents (and
        the other sites of the factor statements reading it). Deterministic sites are
        looked through: a deterministic child's own children count as children, and a
        deterministic parent stands for its parents; no deterministic site is returned.

        Examples
        --------
        >>> import torch, ppl
        >>> from ppl import dist
        >>> def model():
        ...     a = ppl.sample("a", dist.Normal(0.0, 1.0))
        ...     b = ppl.sample("b", dist.Normal(0.0, 1.0))
        ...     c = ppl.sample("c", dist.Normal(a + b, 1.0))
        ...     ppl.sample("d", dist.Normal(c, 1.0), obs=torch.tensor(0.0))
        >>> sorted(ppl.World(model).markov_blanket("a"))
        ['b', 'c']
        """
        members: set[str] = set()
        for factor in self.factors_of(site):
            members.update(self.graph.neighbors(factor))
        blanket: set[str] = set()
        stack = list(members)
        while stack:
            s = stack.pop()
            r = self._records[s]
            if r.kind == DETERMINISTIC:
                stack.extend(p for p in self._parents[r.name] if p not in members)
                members.update(self._parents[r.name])
            else:
                blanket.add(s)
        return blanket - {site}

    # ------------------------------------------------------------------ density
    def log_density(self, values: Mapping[str, Any]) -> float:
        """log p(values, data): the model's log joint with every latent site set.

        That is Σ_sites log p(site | parents) + Σ log-factors, with the latent sites at
        ``values`` and the observed sites at their data, computed by replaying the model
        under ``pyro.poutine.condition``. An invalid program (NaN output) gives −inf.

        Parameters
        ----------
        values : dict of str to value
            One value per latent site: Programs for program sites; tensors, arrays or
            numbers for the others (arrays and numbers become float64 tensors, or tensors of
            the traced value's integer dtype for discrete sites).

        Raises
        ------
        SiteError
            When a latent site is missing, or a name is not a latent site.

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> round(world.log_density({"a": 0.0, "b": 0.0}), 4)  # 3 log N(0 | 0, 1) - 1/8
        -2.8818
        """
        data = self._check_values(values)

        trace = self._run("Scoring", lambda: trace_model(self.model, self.args, self.kwargs,
                                                         data=data, log_prob=True))
        sites = sites_of(trace)
        if set(sites) != set(self._records):
            raise ModelError(f"At these values the model '{self.model_name}' made the sites "
                             f"{list(sites)}, not those of the traced run ({list(self._records)})"
                             ": World needs a model whose sites do not depend on the values "
                             "drawn.")
        total = log_joint(trace)
        return -math.inf if math.isnan(total) else total

    def _check_values(self, values: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(values, Mapping):
            raise SiteError(f"log_density expects a dict of latent site -> value; got "
                            f"{type(values).__name__}.")
        latent = self.latent
        unknown = [k for k in values if k not in latent]
        if unknown:
            why = {k: ("observed" if self._records[k].observed else self._records[k].kind)
                   for k in unknown if k in self._records}
            detail = f" ({', '.join(f'{k} is {v}' for k, v in why.items())})" if why else ""
            raise SiteError(f"Not latent sites of '{self.model_name}': {unknown}{detail}. The "
                            f"latent sites are {latent}; all sites: {self.sites}.")
        missing = [k for k in latent if k not in values]
        if missing:
            raise SiteError(f"log_density needs a value for every latent site; missing: "
                            f"{missing}.")
        return {k: self._convert(k, values[k]) for k in latent}

    def _convert(self, name: str, value: Any) -> Any:
        record = self._records[name]
        if record.kind == PROGRAM:
            if not isinstance(value, (Program, BoundProgram)):
                raise SiteError(f"Site '{name}' is a program site: its value must be a "
                                f"Program; got {type(value).__name__}.")
            return value
        if isinstance(value, torch.Tensor):
            return value
        dtype = torch.float64 if record.value.is_floating_point() else record.value.dtype
        try:
            return torch.as_tensor(np.asarray(value), dtype=dtype)
        except (TypeError, ValueError, RuntimeError) as err:
            raise SiteError(f"The value of site '{name}' must be numeric; got "
                            f"{value!r}.") from err

    # ------------------------------------------------------------------ display
    def render(self, path: str | Path, title: str | None = None) -> Path:
        """Draw the factor graph and save it to ``path`` (.png, .svg or .pdf).

        Variables are circles (observed ones shaded, programs orange and labelled
        "φ f ~ ProgramPrior(grammar)", deterministic ones dashed), factors small black
        squares, plates rounded boxes; layers go from the roots (top) to the data (bottom).
        Matplotlib's Agg renderer draws it (:func:`ppl.render.draw_world`): no display needed.

        Returns
        -------
        pathlib.Path
            The path written.

        Examples
        --------
        >>> import torch, ppl
        >>> def chain():  # a -> b -> c (observed)
        ...     b = ppl.sample("b", ppl.dist.Normal(ppl.sample("a", ppl.dist.Normal(0, 1.0)), 1.0))
        ...     ppl.sample("c", ppl.dist.Normal(b, 1.0), obs=torch.tensor(0.5))
        >>> world = ppl.World(chain)
        >>> import tempfile, pathlib
        >>> world.render(pathlib.Path(tempfile.mkdtemp()) / "chain.png").stat().st_size > 0
        True
        """
        from ppl.render import render_world

        return render_world(self, Path(path), title)

    def __repr__(self) -> str:
        lines = [f"World({self.model_name}: {len(self.sites)} sites, {len(self.factors)} factors)"]
        width = max(len(f) for f in self.factors) if self.factors else 0
        for r in self._records.values():
            factor = self._factor_name(r.name)
            reads = ", ".join(self._parents[r.name])
            given = f" | {reads}" if reads else ""
            if r.kind == FACTOR:
                text, tags = f"factor({reads})", "factor statement"
            elif r.kind == DETERMINISTIC:
                text = f"{r.name} = deterministic({reads})"
                tags = ", ".join(["deterministic"] + ([f"shape {r.shape}"] if r.shape else []))
            else:
                text = f"{r.name} ~ {_label(r)}{given}"
                tags = ", ".join([r.kind] + (["observed"] if r.observed else []) +
                                 ([f"shape {r.shape}"] if r.shape else []))
            lines.append(f"  {factor:<{width}}  {text}  [{tags}]")
        return "\n".join(lines)
