"""Max pooling: winner-takes-all, one edge from the arg-max input of each window."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from provgraph.model.ops.base import SelectOp, Shape


def crop_ceil_windows(y: torch.Tensor, in_size: Shape, kernel: Shape, strides: Shape,
                      pads: Shape, dilations: Shape) -> torch.Tensor:
    """Drop the last window along an axis where, in ceil mode, it would start in the end padding.

    ONNX (and torch, for its own padding) keep a window only if it starts inside the input or its
    begin padding; pooling an explicitly padded input lets torch keep one more.
    """
    d = len(kernel)
    index = [slice(None)] * (y.dim() - d)
    for axis in range(d):
        size = in_size[axis] + pads[axis] + pads[axis + d]
        span = dilations[axis] * (kernel[axis] - 1) + 1
        out = -(-(size - span) // strides[axis]) + 1
        if (out - 1) * strides[axis] >= in_size[axis] + pads[axis]:
            out -= 1
        index.append(slice(0, out))
    return y[tuple(index)]


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
        y, idx = F.max_pool2d(
            xp, self.kernel, self.strides, 0, self.dilations, self.ceil_mode, return_indices=True
        )
        if not self.ceil_mode:
            return y, idx
        crop = (tuple(x.shape[2:]), self.kernel, self.strides, self.pads, self.dilations)
        return crop_ceil_windows(y, *crop), crop_ceil_windows(idx, *crop)

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
