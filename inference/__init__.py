"""inference: the algorithms that answer queries on ``ppl`` models.

Nothing is public yet; ``infer``, ``query``, ``compare`` and ``load`` arrive with the
inference issues (see ``docs/``).
"""

__all__: list[str] = []
