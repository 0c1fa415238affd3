"""Torch kernels of the ops whose edges are annotated one: routing and max pooling.

Relevance ``R (B, T, *out)`` is ⊕-scattered onto the input positions each output reads. Pure
reshapes (Flatten, Reshape, Identity) keep the element order and are a reshape of ``R``.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch
import torch.nn.functional as F

from provgraph.backends.torch_semiring import TorchSemiring
from provgraph.model.ops import MaxPool, RouteOp

_MAPS: weakref.WeakKeyDictionary[RouteOp, list[np.ndarray]] = weakref.WeakKeyDictionary()


def route_step(
    carrier: TorchSemiring,
    op: RouteOp,
    in_shapes: list[tuple[int, ...]],
    r_out: torch.Tensor,
) -> list[torch.Tensor]:
    """Relevance of each input of a routing op (``R_in[j] = ⊕_{k : index[k] = j} R_out[k]``)."""
    if op not in _MAPS:
        _MAPS[op] = op.index_maps(in_shapes)
    n_b, n_t = r_out.shape[:2]
    flat = r_out.reshape(n_b, n_t, -1)
    sent = []
    for shape, index in zip(in_shapes, _MAPS[op]):
        n_in = int(np.prod(shape))
        if len(index) == n_in and np.array_equal(index, np.arange(n_in)):
            sent.append(flat.reshape((n_b, n_t) + tuple(shape)))
            continue
        idx = np.where(index >= 0, index, n_in)  # unread outputs go to a discarded slot
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
