"""The set encoder of data sets: DeepSets over standardised points (x_1..x_d, y).

A data set D = {(x_i, y_i)}_{i=1..n} becomes an embedding e(D) in three steps:

1. each column v of the points [x_1..x_d, y] is standardised, z = (v − m_v) / s_v, with its
   mean m_v and standard deviation s_v over the n points (s_v = 1 when the column is
   constant), computed on v / max|v| so that no square overflows;
2. a per-point MLP φ maps each z_i, and the results are averaged: any n ≥ 1, any order;
3. an MLP ρ maps [mean-pool, scale features] to e(D), where the scale features are
   asinh(m_v) / 5 and log(s_v) / 5 of every column: the standardisation scales are part of
   the embedding, so data sets that differ only by scale differ.

Padded batches carry a mask: padded points neither enter the statistics nor the pool.

Examples
--------
>>> import torch
>>> enc = SetEncoder(inputs=1, hidden=8, embed=4).double()
>>> pts = torch.tensor([[[0.0, 1.0], [1.0, 3.0], [2.0, 5.0]]], dtype=torch.float64)
>>> enc(pts, torch.ones(1, 3, dtype=torch.float64)).shape
torch.Size([1, 4])
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SetEncoder", "standardise"]

TINY = 1e-12
"""Relative standard deviation below which a column counts as constant."""


def standardise(points: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Standardised points and scale features of a padded batch of data sets.

    Parameters
    ----------
    points : tensor (B, n, k)
        Columns [x_1..x_d, y] of B data sets, padded to n points.
    mask : tensor (B, n)
        1 for a real point, 0 for padding (each data set has at least one point).

    Returns
    -------
    z : tensor (B, n, k)
        (v − m) / s per column (0 at padding).
    scales : tensor (B, 2k)
        asinh(m) / 5 and log(s) / 5 of every column (s = 1 for a constant column).

    Examples
    --------
    >>> import torch
    >>> pts = torch.tensor([[[1.0], [3.0]]], dtype=torch.float64)
    >>> z, scales = standardise(pts, torch.ones(1, 2, dtype=torch.float64))
    >>> z.flatten().tolist()
    [-1.0, 1.0]
    """
    m = mask.unsqueeze(-1)
    count = m.sum(dim=1).clamp_min(1.0)
    big = (points.abs() * m).amax(dim=1).clamp_min(TINY)  # (B, k)
    unit = points / big.unsqueeze(1)
    mean_u = (unit * m).sum(dim=1) / count
    var_u = (((unit - mean_u.unsqueeze(1)) ** 2) * m).sum(dim=1) / count
    sd_u = var_u.sqrt()
    constant = sd_u <= TINY
    sd_eff = torch.where(constant, torch.ones_like(sd_u), sd_u)
    z = (unit - mean_u.unsqueeze(1)) / sd_eff.unsqueeze(1) * m
    mean = mean_u * big
    log_sd = torch.where(constant, torch.zeros_like(sd_u), sd_u.clamp_min(TINY).log() +
                         big.log())
    return z, torch.cat([torch.asinh(mean) / 5.0, log_sd / 5.0], dim=-1)


class SetEncoder(nn.Module):
    """e(D): DeepSets embedding of a data set (see the module docstring).

    Parameters
    ----------
    inputs : int
        d, the number of input columns (the points have d + 1 columns).
    hidden : int
        Width of both MLPs.
    embed : int
        Size of the embedding.

    Examples
    --------
    >>> SetEncoder(inputs=2, hidden=8, embed=4).embed
    4
    """

    def __init__(self, inputs: int, hidden: int, embed: int) -> None:
        super().__init__()
        k = inputs + 1
        self.embed = embed
        self.point = nn.Sequential(nn.Linear(k, hidden), nn.ReLU(),
                                   nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(hidden + 2 * k, hidden), nn.ReLU(),
                                  nn.Linear(hidden, embed))

    def forward(self, points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """e(D) of each data set of a padded batch: (B, n, d + 1), (B, n) -> (B, embed).

        Examples
        --------
        >>> import torch
        >>> enc = SetEncoder(inputs=0, hidden=4, embed=2).double()
        >>> y = torch.tensor([[[1.0], [2.0], [0.0]]], dtype=torch.float64)
        >>> padded = enc(y, torch.tensor([[1.0, 1.0, 0.0]], dtype=torch.float64))
        >>> torch.equal(padded, enc(y[:, :2], torch.ones(1, 2, dtype=torch.float64)))
        True
        """
        z, scales = standardise(points, mask)
        h = self.point(z) * mask.unsqueeze(-1)
        pooled = h.sum(dim=1) / mask.sum(dim=1, keepdim=True).clamp_min(1.0)
        out: torch.Tensor = self.head(torch.cat([pooled, scales], dim=-1))
        return out
