"""Routing ops that reorder, cut, join or pad tensors: Transpose, Concat, Slice, Pad.

All are :class:`~provgraph.model.ops.base.RouteOp` subclasses: their index maps come from running
their
own ``forward`` on a tensor of indices, so every backend handles them without extra code. Axes are
sample axes (the batch axis excluded, ``0`` is the first axis after the batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from provgraph.model.ops.base import RouteOp, Shape

PAD_MODES = ("constant", "reflect", "edge", "wrap")


def gather_axis(x: torch.Tensor, dim: int, index: np.ndarray) -> torch.Tensor:
    """``x`` indexed along ``dim`` by ``index``; entries ``-1`` read zero."""
    safe = torch.as_tensor(np.where(index >= 0, index, 0), dtype=torch.long, device=x.device)
    y = x.index_select(dim, safe)
    if np.all(index >= 0):
        return y
    shape = [1] * x.dim()
    shape[dim] = len(index)
    keep = torch.as_tensor(index >= 0, device=x.device).reshape(shape)
    return torch.where(keep, y, torch.zeros((), dtype=x.dtype, device=x.device))


def slice_positions(size: int, start: int, end: int, step: int) -> np.ndarray:
    """Positions ONNX ``Slice`` reads along an axis of ``size`` (its clamping rules)."""
    if step == 0:
        raise ValueError("slice step must not be 0")
    start = start + size if start < 0 else start
    end = end + size if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), size), min(max(end, 0), size)
    else:
        start, end = min(max(start, 0), size - 1), min(max(end, -1), size - 1)
    return np.arange(start, end, step, dtype=np.int64)


def pad_positions(size: int, begin: int, end: int, mode: str) -> np.ndarray:
    """Input position each output position of a padded axis reads (``-1``: the zero fill).

    Negative pads crop. ``reflect`` mirrors without repeating the edge, ``edge`` repeats it,
    ``wrap`` is periodic.
    """
    p = np.arange(-begin, size + end, dtype=np.int64)
    if mode == "constant":
        return np.where((p >= 0) & (p < size), p, -1)
    if mode == "edge":
        return np.clip(p, 0, size - 1)
    if mode == "wrap":
        return np.mod(p, size)
    if mode == "reflect":
        if size == 1:
            return np.zeros_like(p)
        period = 2 * (size - 1)
        q = np.mod(p, period)
        return np.where(q < size, q, period - q)
    raise ValueError(f"unknown pad mode {mode!r}")


@dataclass(eq=False)
class Transpose(RouteOp):
    """Permute the sample axes: output axis ``i`` is input axis ``perm[i]``."""

    propagates_non_finite = True

    perm: Shape = field(kw_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, *(p + 1 for p in self.perm))

    def move_back(self, r_out: torch.Tensor, lead: int) -> list[torch.Tensor]:
        """The inverse permutation: input axis ``perm[i]`` is output axis ``i``."""
        inverse = np.argsort(self.perm)
        return [r_out.permute(*range(lead), *(int(i) + lead for i in inverse)).contiguous()]


@dataclass(eq=False)
class Concat(RouteOp):
    """Join the inputs along sample axis ``axis``."""

    axis: int = field(kw_only=True)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=self.axis + 1)


@dataclass(eq=False)
class Slice(RouteOp):
    """ONNX ``Slice`` over sample axes (``starts``, ``ends``, ``steps`` per entry of ``axes``).

    ``Split`` becomes one :class:`Slice` per output.
    """

    axes: Shape = field(kw_only=True)
    starts: Shape = field(kw_only=True)
    ends: Shape = field(kw_only=True)
    steps: Shape = field(default=(), kw_only=True)

    def __post_init__(self) -> None:
        self.steps = tuple(self.steps) or (1,) * len(self.axes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for axis, start, end, step in zip(self.axes, self.starts, self.ends, self.steps):
            positions = slice_positions(int(x.shape[axis + 1]), start, end, step)
            x = gather_axis(x, axis + 1, positions)
        return x


@dataclass(eq=False)
class Pad(RouteOp):
    """Pad (or crop, with negative pads) the sample axes; ``pads`` lists every axis's begin,
    then every axis's end (ONNX order). ``constant`` pads with zeros, which have no edges."""

    pads: Shape = field(kw_only=True)
    mode: str = field(default="constant", kw_only=True)

    def __post_init__(self) -> None:
        if self.mode not in PAD_MODES:
            raise ValueError(f"unknown pad mode {self.mode!r}; one of {PAD_MODES}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rank = x.dim() - 1
        if len(self.pads) != 2 * rank:
            raise ValueError(f"pads {list(self.pads)} do not have {2 * rank} entries")
        for axis in range(rank):
            begin, end = self.pads[axis], self.pads[rank + axis]
            if begin or end:
                positions = pad_positions(int(x.shape[axis + 1]), begin, end, self.mode)
                x = gather_axis(x, axis + 1, positions)
        return x
