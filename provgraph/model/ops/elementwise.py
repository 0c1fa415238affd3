"""Passthrough ops beyond plain activations: gating, PReLU, local response normalisation.

Each is a :class:`~provgraph.model.ops.base.PassthroughOp`: output ``k`` has one edge, from element
``k`` of ``inputs[0]``, annotated with K's one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from provgraph.model.ops.base import PassthroughOp


@dataclass(eq=False)
class Gate(PassthroughOp):
    """``y = signal ⊙ gate`` of two computed tensors (squeeze-excitation, SiLU, GELU's ``x·Φ(x)``).

    ``inputs`` is ``(signal, gate)``; the signal has the output's shape, the gate broadcasts to
    it. Relevance follows the signal: each output has one edge from the same element of the
    signal, and the gate branch receives none. The gate acts like an activation's slope, a
    multiplier computed from the input, not a path along which the output was formed.
    """

    propagates_non_finite = True

    def forward(self, signal: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return signal * gate


class Quotient(PassthroughOp):
    """``y = signal / divisor`` of two computed tensors (ConvNeXt-V2's ``‖x‖ / mean ‖x‖``).

    ``inputs`` is ``(signal, divisor)``; the signal has the output's shape, the divisor
    broadcasts to it. The identity rule: the divisor is a constant of the sample's forward pass,
    so output ``k`` has one edge from the same element of the signal and no bias; every rule
    gives such an edge the weight one (LRP-0: ``z/z``), so it is annotated with K's one, and the
    divisor's branch receives no relevance, as a gate's.
    """

    def forward(self, signal: torch.Tensor, divisor: torch.Tensor) -> torch.Tensor:
        return signal / divisor


@dataclass(eq=False)
class PRelu(PassthroughOp):
    """``y = x`` where ``x >= 0``, else ``slope · x``; ``slope`` broadcasts to one sample."""

    slope: np.ndarray = field(kw_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        slope = torch.as_tensor(self.slope, dtype=x.dtype, device=x.device)
        return torch.where(x >= 0, x, x * slope)


@dataclass(eq=False)
class LRN(PassthroughOp):
    """Local response normalisation across channels (ONNX ``LRN``).

    ``y_c = x_c / (bias + alpha / size · Σ_{c'} x_{c'}²)^beta`` over the ``size`` channels
    ``c - ⌊(size-1)/2⌋ … c + ⌈(size-1)/2⌉``. One edge ``k → k``: the neighbours only rescale.
    """

    size: int = field(kw_only=True)
    alpha: float = field(default=1e-4, kw_only=True)
    beta: float = field(default=0.75, kw_only=True)
    bias: float = field(default=1.0, kw_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        squares = (x * x).reshape(n, 1, c, -1)
        before, after = (self.size - 1) // 2, self.size // 2
        squares = F.pad(squares, (0, 0, before, after))
        sums = F.avg_pool2d(squares, (self.size, 1), stride=1) * self.size
        scale = (self.bias + self.alpha / self.size * sums).pow(self.beta)
        return x / scale.reshape(x.shape)
