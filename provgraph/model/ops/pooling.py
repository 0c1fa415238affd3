"""Max pooling: winner-takes-all, one edge from the arg-max input of each window."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from provgraph.model.ops.base import SelectOp, Shape


@dataclass(eq=False)
class MaxPool(SelectOp):
    """2-d max pooling with stride, padding (ONNX order), dilation and ceil mode."""

    kernel: Shape = field(kw_only=True)
    strides: Shape = field(default=(), kw_only=True)
    pads: Shape = field(default=(0, 0, 0, 0), kw_only=True)
    dilations: Shape = field(default=(1, 1), kw_only=True)
    ceil_mode: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        self.strides = tuple(self.strides) or tuple(self.kernel)

    def _pool(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        top, left, bottom, right = self.pads
        xp = F.pad(x, (left, right, top, bottom), value=-torch.inf)
        return F.max_pool2d(
            xp, self.kernel, self.strides, 0, self.dilations, self.ceil_mode, return_indices=True
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool(x)[0]

    def selection(self, x: torch.Tensor) -> np.ndarray:
        """Flat input index of each output's winner (indices into the unpadded sample)."""
        top, left, bottom, right = self.pads
        c, h, w = x.shape[1:]
        _, idx = self._pool(x[:1])
        padded_w = w + left + right
        row, col = idx // padded_w - top, idx % padded_w - left
        channel = torch.arange(c, device=x.device).reshape(1, c, 1, 1)
        flat = channel * (h * w) + row * w + col
        return flat.reshape(-1).cpu().numpy().astype(np.int64)
