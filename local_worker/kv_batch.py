"""The shared KV cache of a running batch: joining new rows, dropping finished ones.

Rows are left-padded: every row's newest token sits in the last column, and the attention
mask marks the real columns. Joining pads the shorter side on the left; dropping rows
also drops leading columns no remaining row uses, so the cache never grows for nothing.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from transformers import DynamicCache


def _left_pad(tensor: torch.Tensor, columns: int, dim: int) -> torch.Tensor:
    if columns == 0:
        return tensor
    pad = [0, 0] * (tensor.dim() - 1 - (dim % tensor.dim())) + [columns, 0]
    return F.pad(tensor, pad)


def join(
    cache: DynamicCache, mask: torch.Tensor, other: DynamicCache, other_mask: torch.Tensor
) -> tuple[DynamicCache, torch.Tensor]:
    """One cache holding `cache`'s rows then `other`'s, aligned on the right."""
    width = max(mask.shape[1], other_mask.shape[1])
    grow, other_grow = width - mask.shape[1], width - other_mask.shape[1]
    pairs: list[tuple[Any, Any]] = list(zip(cache.layers, other.layers, strict=True))
    for layer, extra in pairs:
        layer.keys = torch.cat(
            [_left_pad(layer.keys, grow, -2), _left_pad(extra.keys, other_grow, -2)]
        )
        layer.values = torch.cat(
            [_left_pad(layer.values, grow, -2), _left_pad(extra.values, other_grow, -2)]
        )
    joined = torch.cat([_left_pad(mask, grow, 1), _left_pad(other_mask, other_grow, 1)])
    return cache, joined


def keep(cache: DynamicCache, mask: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """Keep only `rows` (in place for the cache); returns the new mask."""
    index = torch.tensor(rows, dtype=torch.long)
    mask = mask.index_select(0, index)
    used = torch.nonzero(mask.any(dim=0))
    first = int(used[0]) if used.numel() else mask.shape[1]
    layers: list[Any] = list(cache.layers)
    for layer in layers:
        layer.keys = layer.keys.index_select(0, index)[:, :, first:]
        layer.values = layer.values.index_select(0, index)[:, :, first:]
    return mask[:, first:]
