"""The maximum over any axes of a sample: winner-takes-all, one edge from the arg-max input."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from provgraph.model.ops.base import SelectOp, Shape


@dataclass(eq=False)
class AxisMax(SelectOp):
    """``y = max over axes of x`` (ONNX ``ReduceMax``), ``axes`` counted with the batch axis
    (all ≥ 1); ``keepdims`` keeps them with size 1.

    Each output has one edge, from the input element that attains its maximum (the first one
    where several tie), as max pooling has (DESIGN §3: winner-takes-all).
    """

    axes: Shape = field(kw_only=True)
    keepdims: bool = field(default=True, kw_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.amax(x, dim=tuple(self.axes), keepdim=self.keepdims)

    def selection(self, x: torch.Tensor) -> np.ndarray:
        """Flat input index of each output's winner, for the single sample ``x``."""
        sample = tuple(x.shape[1:])
        kept = [a for a in range(1, x.dim()) if a not in self.axes]
        order = [0, *kept, *self.axes]
        n_kept = int(np.prod([x.shape[a] for a in kept]))
        moved = x[:1].permute(order).reshape(n_kept, -1)
        flat = torch.arange(int(np.prod(sample)), device=x.device).reshape((1, *sample))
        flat = flat.permute(order).reshape(n_kept, -1)
        winner = torch.argmax(moved, dim=1, keepdim=True)
        return torch.gather(flat, 1, winner).reshape(-1).cpu().numpy().astype(np.int64)
