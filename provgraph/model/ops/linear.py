"""Linear ops: ``z_k = Σ_j a_j w_jk + b_k``. Their edges carry the LRP rule's weights."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from provgraph.model.ops.base import LinearOp, Shape, csr_from_edges
from provgraph.model.ops.pooling import crop_ceil_windows


def constant_tensor(a: np.ndarray | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A constant of the network (a weight, a bias) as a tensor of ``like``'s dtype and device.

    Weights are kept read-only (the kernels share them without copies), and torch warns when it
    wraps a read-only array without copying; forward passes only read the tensor, so the
    warning is silenced here rather than paid for with a copy.
    """
    if not isinstance(a, np.ndarray) or a.flags.writeable:
        return torch.as_tensor(a, dtype=like.dtype, device=like.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(a, dtype=like.dtype, device=like.device)


@dataclass(eq=False)
class Dense(LinearOp):
    """``y = x @ W + b`` over the last axis of ``(N, …, n_in)`` inputs; ``weight`` has shape
    ``(n_in, n_out)``.

    An input of rank 3 or more (``(batch, tokens, features)``) is transformed per token: the
    edge matrix is block-diagonal, one copy of ``W`` for each position of the leading axes.
    """

    propagates_non_finite = True

    weight: np.ndarray = field(kw_only=True)
    bias: np.ndarray | None = field(default=None, kw_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else constant_tensor(self.bias, x)
        return F.linear(x, constant_tensor(self.weight, x).T, bias)  # one fused matrix product

    @staticmethod
    def positions(in_shape: Shape) -> int:
        """Number of positions (tokens, pixels) the weight is applied at."""
        return math.prod(in_shape[:-1])

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        n_in, n_out = self.weight.shape
        n_pos = self.positions(in_shapes[0])
        pos = np.repeat(np.arange(n_pos), n_in * n_out)
        rows = pos * n_in + np.tile(np.repeat(np.arange(n_in), n_out), n_pos)
        cols = pos * n_out + np.tile(np.arange(n_out), n_in * n_pos)
        data = np.tile(self.weight.reshape(-1), n_pos)
        return [csr_from_edges(rows, cols, data, (n_pos * n_in, n_pos * n_out))]

    def bias_vector(self, out_shape: Shape) -> np.ndarray | None:
        if self.bias is None:
            return None
        return np.tile(np.asarray(self.bias, dtype=np.float64), self.positions(out_shape))

    def num_edges(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        per_position = self.weight.size + (0 if self.bias is None else self.weight.shape[1])
        return int(per_position * self.positions(in_shapes[0]))


def _window_positions(
    in_size: Shape, out_size: Shape, kernel: Shape, stride: Shape, pad_begin: Shape, dilation: Shape
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid (output position, kernel offset, input position) triples of a sliding window.

    Positions are flattened over the spatial dimensions; windows falling on padding are dropped.
    """
    outs = np.indices(out_size).reshape(len(out_size), -1)  # (d, P_out)
    ks = np.indices(kernel).reshape(len(kernel), -1)  # (d, P_k)
    pos = (
        outs[:, :, None] * np.asarray(stride)[:, None, None]
        - np.asarray(pad_begin)[:, None, None]
        + ks[:, None, :] * np.asarray(dilation)[:, None, None]
    )  # (d, P_out, P_k)
    valid = np.all((pos >= 0) & (pos < np.asarray(in_size)[:, None, None]), axis=0)
    o_idx, k_idx = np.nonzero(valid)
    in_flat = np.ravel_multi_index(tuple(pos[:, o_idx, k_idx]), in_size)
    return o_idx, k_idx, in_flat


@dataclass(eq=False)
class Conv(LinearOp):
    """N-d convolution (cross-correlation) with stride, padding, dilation and groups.

    ``weight`` has shape ``(C_out, C_in / groups, *kernel)``; ``pads`` lists the padding at the
    beginning of every spatial axis, then at the end (ONNX order).
    """

    weight: np.ndarray = field(kw_only=True)
    bias: np.ndarray | None = field(default=None, kw_only=True)
    strides: Shape = field(default=(), kw_only=True)
    pads: Shape = field(default=(), kw_only=True)
    dilations: Shape = field(default=(), kw_only=True)
    groups: int = field(default=1, kw_only=True)

    def __post_init__(self) -> None:
        d = self.weight.ndim - 2
        self.strides = tuple(self.strides) or (1,) * d
        self.pads = tuple(self.pads) or (0,) * (2 * d)
        self.dilations = tuple(self.dilations) or (1,) * d

    @property
    def kernel(self) -> Shape:
        return tuple(self.weight.shape[2:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = len(self.kernel)
        conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[d]
        begin, end = self.pads[:d], self.pads[d:]
        padding: tuple[int, ...] | int = tuple(begin)
        if begin != end:
            torch_pads = [p for axis in reversed(range(d)) for p in (begin[axis], end[axis])]
            x = F.pad(x, torch_pads)
            padding = 0
        w = constant_tensor(self.weight, x)
        b = None if self.bias is None else constant_tensor(self.bias, x)
        return conv(x, w, b, self.strides, padding, self.dilations, self.groups)

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        (c_in, *in_size), (c_out, *out_size) = in_shapes[0], out_shape
        d = len(self.kernel)
        o_idx, k_idx, in_flat = _window_positions(
            tuple(in_size), tuple(out_size), self.kernel, self.strides, self.pads[:d],
            self.dilations,
        )
        cin_g, cout_g = c_in // self.groups, c_out // self.groups
        co = np.arange(c_out)[:, None, None]
        ci = np.arange(cin_g)[None, :, None]
        in_channel = (co // cout_g) * cin_g + ci
        n_in_sp, n_out_sp = int(np.prod(in_size)), int(np.prod(out_size))
        rows = in_channel * n_in_sp + in_flat[None, None, :]
        cols = co * n_out_sp + o_idx[None, None, :] + 0 * ci
        w = self.weight.reshape(c_out, cin_g, -1)[:, :, k_idx]
        shape = (c_in * n_in_sp, c_out * n_out_sp)
        return [csr_from_edges(rows.reshape(-1), cols.reshape(-1), w.reshape(-1), shape)]

    def bias_vector(self, out_shape: Shape) -> np.ndarray | None:
        if self.bias is None:
            return None
        n_sp = int(np.prod(out_shape[1:]))
        return np.repeat(np.asarray(self.bias, dtype=np.float64), n_sp)

    def num_edges(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        per_output = int(np.prod(self.weight.shape[1:])) + (self.bias is not None)
        return int(np.prod(out_shape)) * per_output


@dataclass(eq=False)
class AvgPool(LinearOp):
    """2-d average pooling; a depthwise linear op with weights ``1/n`` (n = window count)."""

    kernel: Shape = field(kw_only=True)
    strides: Shape = field(default=(), kw_only=True)
    pads: Shape = field(default=(0, 0, 0, 0), kw_only=True)
    count_include_pad: bool = field(default=False, kw_only=True)
    ceil_mode: bool = field(default=False, kw_only=True)

    def __post_init__(self) -> None:
        self.strides = tuple(self.strides) or tuple(self.kernel)

    def _window_sum(self, x: torch.Tensor, pad_value: float) -> torch.Tensor:
        top, left, bottom, right = self.pads
        xp = F.pad(x, (left, right, top, bottom), value=pad_value)
        y = F.avg_pool2d(
            xp, self.kernel, self.strides, 0, self.ceil_mode, True, divisor_override=1
        )
        if not self.ceil_mode:
            return y
        return crop_ceil_windows(y, tuple(x.shape[2:]), self.kernel, self.strides, self.pads,
                                 (1, 1))

    def _divisor(self, like: torch.Tensor) -> torch.Tensor:
        ones = torch.ones((1, 1) + tuple(like.shape[2:]), dtype=like.dtype, device=like.device)
        return self._window_sum(ones, 1.0 if self.count_include_pad else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._window_sum(x, 0.0) / self._divisor(x)

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        (c, *in_size), (_, *out_size) = in_shapes[0], out_shape
        o_idx, _, in_flat = _window_positions(
            tuple(in_size), tuple(out_size), self.kernel, self.strides, self.pads[:2], (1, 1)
        )
        probe = torch.zeros((1, c) + tuple(in_size), dtype=torch.float64)
        divisor = self._divisor(probe).reshape(-1).numpy()
        n_in_sp, n_out_sp = int(np.prod(in_size)), int(np.prod(out_size))
        ch = np.arange(c)[:, None]
        rows = ch * n_in_sp + in_flat[None, :]
        cols = ch * n_out_sp + o_idx[None, :]
        w = np.broadcast_to(1.0 / divisor[o_idx], rows.shape)
        shape = (c * n_in_sp, c * n_out_sp)
        return [csr_from_edges(rows.reshape(-1), cols.reshape(-1), w.reshape(-1), shape)]

    def num_edges(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return int(np.prod(out_shape)) * int(np.prod(self.kernel))


@dataclass(eq=False)
class GlobalAvgPool(LinearOp):
    """Mean over all spatial positions of each channel; output shape ``(C, 1, …, 1)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        c, *size = in_shapes[0]
        n_sp = int(np.prod(size))
        rows = np.arange(c * n_sp)
        cols = rows // n_sp
        return [csr_from_edges(rows, cols, np.full(c * n_sp, 1.0 / n_sp), (c * n_sp, c))]

    def num_edges(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return int(np.prod(in_shapes[0]))


@dataclass(eq=False)
class Affine(LinearOp):
    """Elementwise ``y = x * scale + shift`` (unfolded BatchNorm, Mul/Add by a constant).

    ``scale`` and ``shift`` broadcast against the input shape without its batch axis. Each output
    has one edge from its input and, when ``shift`` is given, one from the op's bias source.
    """

    propagates_non_finite = True

    scale: np.ndarray = field(kw_only=True)
    shift: np.ndarray | None = field(default=None, kw_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = constant_tensor(self.scale, x)
        if self.shift is None:
            return x * scale
        return torch.addcmul(constant_tensor(self.shift, x), x, scale)  # one pass

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        n = int(np.prod(out_shape))
        w = np.broadcast_to(self.scale, out_shape).reshape(-1).astype(np.float64)
        idx = np.arange(n)
        return [csr_from_edges(idx, idx, w, (n, n))]

    def bias_vector(self, out_shape: Shape) -> np.ndarray | None:
        if self.shift is None:
            return None
        return np.broadcast_to(self.shift, out_shape).reshape(-1).astype(np.float64)

    def num_edges(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return int(np.prod(out_shape)) * (1 + (self.shift is not None))


@dataclass(eq=False)
class Add(LinearOp):
    """Sum of two computed tensors of the same shape (residual connection): weights 1."""

    propagates_non_finite = True

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        n = int(np.prod(out_shape))
        eye = sp.identity(n, dtype=np.float64, format="csr")
        return [sp.csr_array(eye) for _ in in_shapes]

    def num_edges(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        return 2 * int(np.prod(out_shape))
