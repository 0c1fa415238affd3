"""Routing by constant indices: ONNX ``Gather`` on a computed tensor (the CLS-token select
``x[:, 0]``, a relative-position table read by index)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from provgraph.model.ops.base import RouteOp


@dataclass(eq=False)
class Take(RouteOp):
    """``y = x.take(indices, axis)``: ONNX ``Gather`` with constant ``indices``.

    The output's shape is ``x.shape[:axis] + indices.shape + x.shape[axis + 1:]``; every output
    element has one edge, from the element it copies, annotated with K's one.

    Attributes
    ----------
    axis : the gathered axis (batch axis 0 counted, so ≥ 1)
    indices : non-negative integer indices into that axis, flattened in C order
    index_shape : the shape of the indices (``()`` for one index: the axis is dropped)
    """

    axis: int = field(kw_only=True)
    indices: tuple[int, ...] = field(kw_only=True)
    index_shape: tuple[int, ...] = field(default=(), kw_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = torch.as_tensor(np.asarray(self.indices, dtype=np.int64), device=x.device)
        picked = torch.index_select(x, self.axis, index)
        return picked.reshape(x.shape[: self.axis] + self.index_shape + x.shape[self.axis + 1 :])
