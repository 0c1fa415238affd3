"""A patch embedding (a convolution whose windows tile its input) as a dense op per patch.

A convolution with ``kernel = strides``, no padding, no dilation and one group whose windows
cover the input exactly (``in = out · kernel`` on every axis, ViT's ``Conv(16×16, stride 16)``)
reads each input neuron in exactly one window. Each output position ``o`` is then a dense op
from its patch ``(C_in, *kernel)`` to ``C_out`` with the weight ``W (C_out, C_in·K)`` (the
convolution's own weight, flattened): the patches are the rows of the fused dense kernel, long
contiguous rows where the window kernel would walk ``K`` rows of ``C_in`` channels each.

The functions here only move axes: :func:`patches` ``(N, C, *spatial) → (N·P, C·K)``,
:func:`positions_last` for the output and its relevance, and :func:`from_patches`, the inverse
of :func:`patches` for the relevance of the input.
"""

from __future__ import annotations

import math

import torch

from provgraph.model.ops import Conv


def tiles(op: Conv, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> bool:
    """Whether ``op``'s windows tile its input ``(C_in, *spatial)`` exactly."""
    kernel = tuple(op.weight.shape[2:])
    d = len(kernel)
    return (op.groups == 1 and tuple(op.strides) == kernel and set(op.pads) <= {0}
            and set(op.dilations) <= {1}
            and all(o * k == i for o, k, i in zip(out_shape[1:], kernel, in_shape[1:]))
            and len(in_shape) == d + 1)


def _split(x: torch.Tensor, lead: int, kernel: tuple[int, ...]) -> torch.Tensor:
    """``(*lead axes, C, *spatial)`` viewed as ``(*lead, C, o_1, k_1, …, o_d, k_d)``."""
    shape = tuple(x.shape[: lead + 1])
    for extent, k in zip(x.shape[lead + 1:], kernel):
        shape += (extent // k, k)
    return x.reshape(shape)


def patches(x: torch.Tensor, kernel: tuple[int, ...]) -> torch.Tensor:
    """``(N, C, *spatial) → (N·P, C·K)``: one row per window, ``(c, κ)`` in the weight's order."""
    d = len(kernel)
    split = _split(x, 1, kernel)
    outer = tuple(2 + 2 * i for i in range(d))
    inner = tuple(3 + 2 * i for i in range(d))
    rows = split.permute((0,) + outer + (1,) + inner)
    return rows.reshape(-1, x.shape[1] * math.prod(kernel))


def positions_last(x: torch.Tensor, lead: int) -> torch.Tensor:
    """``(N, *lead', C, *spatial) → (N·P, *lead', C)`` (``lead`` axes before ``C``, batch
    included): the rows of the dense kernel for an output or its relevance."""
    shape = tuple(x.shape)
    flat = x.reshape(shape[: lead + 1] + (-1,))  # (N, *lead', C, P)
    moved = flat.movedim(-1, 1)  # (N, P, *lead', C)
    return moved.reshape((-1,) + shape[1 : lead + 1])


def from_patches(rows: torch.Tensor, n: int, in_shape: tuple[int, ...],
                 kernel: tuple[int, ...]) -> torch.Tensor:
    """``(N·P, T, C·K) → (N, T, C, *spatial)``: the inverse of :func:`patches` per target."""
    d = len(kernel)
    n_t, channels = rows.shape[1], in_shape[0]
    outer = tuple(s // k for s, k in zip(in_shape[1:], kernel))
    x = rows.reshape((n,) + outer + (n_t, channels) + kernel)
    # axes: 0 N, 1..d outer, d+1 T, d+2 C, d+3.. kernel → (N, T, C, o_1, k_1, …)
    perm = (0, d + 1, d + 2)
    for i in range(d):
        perm += (1 + i, d + 3 + i)
    return x.permute(perm).reshape((n, n_t) + tuple(in_shape))
