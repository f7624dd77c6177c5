"""The blocks a Gibbs sweep is composed of, BlackJAX style: each a pure
``step(rng, ctx, state, site, adapting) -> (GibbsState, BlockInfo)`` over the shared
:class:`~inference.mcmc.blocks.base.GibbsState`, reading the target, the options and the
caches from an explicit :class:`~inference.mcmc.blocks.base.Context`.

- :mod:`~inference.mcmc.blocks.program`: structure and constant moves of a program site
  (the move table :data:`~inference.mcmc.blocks.program.STRUCTURE_MOVES`);
- :mod:`~inference.mcmc.blocks.continuous`: random walk of a continuous site, MALA on a
  program's constants;
- :mod:`~inference.mcmc.blocks.discrete`: uniform proposals for a discrete site;
- :mod:`~inference.mcmc.blocks.nuts`: a NUTS transition on a block of continuous sites;
- :mod:`~inference.mcmc.blocks.collapsed`: the collapsed mode of a program site (an
  approximation).
"""
