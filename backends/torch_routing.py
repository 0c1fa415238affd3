"""Torch kernels of the ops whose edges are annotated one: routing and max pooling.

Relevance ``R (B, T, *out)`` is ⊕-scattered onto the input positions each output reads. Pure
reshapes (Flatten, Reshape, Identity) keep the element order and are a reshape of ``R``.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
import torch
import torch.nn.functional as F

from provgraph.backends.torch_semiring import TorchSemiring
from provgraph.model.ops import MaxPool, RouteOp

_MAPS: weakref.WeakKeyDictionary[RouteOp, list[np.ndarray | None]] = weakref.WeakKeyDictionary()


def _scatter_index(index: np.ndarray, n_in: int) -> np.ndarray | None:
    """The scatter index of one input (unread outputs go to a discarded slot ``n_in``), or
    ``None`` when the map is the identity."""
    if len(index) == n_in and np.array_equal(index, np.arange(n_in)):
        return None
    return np.where(index >= 0, index, n_in)


def route_step(
    carrier: TorchSemiring,
    op: RouteOp,
    in_shapes: list[tuple[int, ...]],
    r_out: torch.Tensor,
    out_shape: tuple[int, ...] | None = None,
) -> list[torch.Tensor]:
    """Relevance of each input of a routing op (``R_in[j] = ⊕_{k : index[k] = j} R_out[k]``);
    ``out_shape``, the output's shape, lets a bijection move ``R`` back as a view."""
    if out_shape is not None:
        moved = op.move_back(r_out.reshape(tuple(r_out.shape[:2]) + tuple(out_shape)), 2)
        if moved is not None:  # each input element receives one output's relevance
            return moved
    if op not in _MAPS:
        _MAPS[op] = [_scatter_index(index, int(np.prod(shape)))
                     for shape, index in zip(in_shapes, op.index_maps(in_shapes))]
    n_b, n_t = r_out.shape[:2]
    flat = r_out.reshape(n_b, n_t, -1)
    sent = []
    for shape, idx in zip(in_shapes, _MAPS[op]):
        if idx is None:  # the element order is kept: a reshape of R
            sent.append(flat.reshape((n_b, n_t) + tuple(shape)))
            continue
        n_in = math.prod(shape)
        idx_t = torch.as_tensor(idx, device=r_out.device).reshape(1, 1, -1)
        scattered = carrier.scatter(flat, idx_t, n_in + 1)[..., :n_in]
        sent.append(scattered.reshape((n_b, n_t) + tuple(shape)))
    return sent


def maxpool_step(
    carrier: TorchSemiring,
    op: MaxPool,
    x: torch.Tensor,
    r_out: torch.Tensor,
    winners: torch.Tensor | None = None,
) -> torch.Tensor:
    """Winner-takes-all: each output's relevance goes to its window's arg-max input.

    ``winners``: the arg-max indices the forward pass already found (unpadded pooling only).
    """
    top, left, bottom, right = op.pads
    n_b, c, h, w = x.shape
    n_t = r_out.shape[1]
    src = r_out.reshape(n_b, n_t, c, -1)
    if not any(op.pads):  # every window lies in the sample: its indices are the flat winners
        idx = winners
        if idx is None:
            _, idx = F.max_pool2d(
                x, op.kernel, op.strides, 0, op.dilations, op.ceil_mode, return_indices=True
            )
        out = carrier.scatter(src, idx.reshape(n_b, 1, c, -1), h * w)
        return out.reshape(n_b, n_t, c, h, w)
    _, idx = op._pool(x)  # indices into the padded sample, ceil-mode windows as ONNX keeps them
    padded_w = w + left + right
    row, col = idx // padded_w - top, idx % padded_w - left
    inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    flat = torch.where(inside, row * w + col, torch.full_like(idx, h * w))
    out = carrier.scatter(src, flat.reshape(n_b, 1, c, -1), h * w + 1)[..., : h * w]
    return out.reshape(n_b, n_t, c, h, w)
