"""The Gibbs plan: which block kernel updates which latent sites.

A plan is a list of ``(kernel, sites)`` blocks that covers every latent site exactly once;
:class:`inference.mcmc.gibbs.Gibbs` runs one update per block per sweep, in order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from inference.target import SiteInfo
from ppl.errors import PPLError
from ppl.trace import CONTINUOUS, DISCRETE, PROGRAM

__all__ = ["BLOCK_KERNELS", "make_plan"]

BLOCK_KERNELS = ("ProgramMH", "NUTS", "RW", "Noise", "DiscreteMH")
"""Block kernels a plan may use: program moves, NUTS, per-site random walk, a Normal
likelihood's scale from its residuals (:mod:`inference.mcmc.blocks.noise`), discrete MH."""
_ALLOWED = {"ProgramMH": {PROGRAM}, "NUTS": {CONTINUOUS}, "RW": {CONTINUOUS},
            "Noise": {CONTINUOUS}, "DiscreteMH": {DISCRETE}}


def make_plan(latents: Mapping[str, SiteInfo], blocks: Sequence[tuple[str, Any]] | None = None,
              noise: Collection[str] = ()) -> list[tuple[str, list[SiteInfo]]]:
    """The Gibbs plan: (kernel, sites) blocks covering every latent site exactly once.

    Default: ``ProgramMH`` per program site, a ``Noise`` block per site in ``noise`` (the
    scales of Normal likelihoods, :func:`inference.mcmc.blocks.noise.noise_sites`), one
    ``NUTS`` block on the other continuous sites, ``DiscreteMH`` per discrete site, in the
    model's order. By hand, ``blocks`` is a
    sequence of ``(kernel, sites)`` pairs with kernel in :data:`BLOCK_KERNELS` and sites a
    name or a list of names; NUTS and RW take only continuous sites (no program or discrete
    site in a gradient block), ProgramMH only programs, DiscreteMH only discrete sites with
    a finite support (a Poisson site has no kernel: an error).

    Examples
    --------
    >>> from inference.target import SiteInfo
    >>> latents = {"f": SiteInfo("f", "program", None, ()),
    ...            "s": SiteInfo("s", "continuous", None, ())}
    >>> [(k, [x.name for x in v]) for k, v in make_plan(latents)]
    [('ProgramMH', ['f']), ('NUTS', ['s'])]
    >>> make_plan(latents, [("NUTS", ["f", "s"])])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ppl.errors.PPLError: Block NUTS cannot update program site 'f': ...
    """
    for s in latents.values():
        if s.kind == DISCRETE and not getattr(s.fn, "has_enumerate_support", False):
            raise PPLError(f"Discrete site {s.name!r} ({type(s.fn).__name__}) has no finite "
                           "support to propose from, so no Gibbs block can update it; give it "
                           "a finite support (e.g. Categorical) or use method='importance'.")
    if blocks is None:
        plan: list[tuple[str, list[SiteInfo]]] = []
        continuous = [s for s in latents.values()
                      if s.kind == CONTINUOUS and s.name not in noise]
        for s in latents.values():
            if s.kind == PROGRAM:
                plan.append(("ProgramMH", [s]))
            elif s.kind == DISCRETE:
                plan.append(("DiscreteMH", [s]))
            elif s.name in noise:
                plan.append(("Noise", [s]))
            elif s is continuous[0]:
                plan.append(("NUTS", continuous))
        return plan
    plan = []
    seen: dict[str, str] = {}
    for entry in blocks:
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
            raise PPLError(f"Each block is a (kernel, sites) pair; got {entry!r}.")
        kind, names = entry
        if kind not in BLOCK_KERNELS:
            raise PPLError(f"Unknown block kernel {kind!r}; expected one of {BLOCK_KERNELS}.")
        names = [names] if isinstance(names, str) else list(names)
        if not names:
            raise PPLError(f"Block {kind} has no sites.")
        sites = []
        for name in names:
            if name not in latents:
                raise PPLError(f"Block {kind} names {name!r}, which is not a latent site; the "
                               f"latent sites are {list(latents)}.")
            if name in seen:
                raise PPLError(f"Site {name!r} is in two blocks ({seen[name]} and {kind}); "
                               "each latent site belongs to exactly one block.")
            site = latents[name]
            if site.kind not in _ALLOWED[kind]:
                fix = {PROGRAM: "ProgramMH", DISCRETE: "DiscreteMH",
                       CONTINUOUS: "NUTS or RW"}[site.kind]
                raise PPLError(f"Block {kind} cannot update {site.kind} site {name!r}: "
                               f"{kind} takes {next(iter(_ALLOWED[kind]))} sites only; use "
                               f"{fix} for it.")
            seen[name] = kind
            sites.append(site)
        plan.append((kind, sites))
    missing = [n for n in latents if n not in seen]
    if missing:
        raise PPLError(f"The blocks leave latent site(s) {missing} without a kernel; every "
                       "latent site belongs to exactly one block.")
    return plan
