"""Elementwise activations: relevance passes through (one edge ``k → k`` annotated one)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from provgraph.model.ops.base import PassthroughOp

ACTIVATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "relu": lambda x: F.relu(x),
    "leaky_relu": lambda x, alpha=0.01: F.leaky_relu(x, alpha),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "clip": lambda x, min=None, max=None: torch.clamp(x, min, max),
    "hard_sigmoid": lambda x, alpha=0.2, beta=0.5: torch.clamp(alpha * x + beta, 0.0, 1.0),
    "hard_swish": lambda x: x * torch.clamp(x / 6.0 + 0.5, 0.0, 1.0),
    "elu": lambda x, alpha=1.0: F.elu(x, alpha),
    "selu": lambda x, alpha=1.6732632423543772, gamma=1.0507009873554805: gamma
    * torch.where(x > 0, x, alpha * (torch.exp(x) - 1)),
    "gelu": lambda x, approximate="none": F.gelu(x, approximate=approximate),
    "softplus": F.softplus,
    "erf": torch.erf,
}


@dataclass(eq=False)
class Activation(PassthroughOp):
    """An elementwise activation function from :data:`ACTIVATIONS`, with keyword parameters."""

    function: str = field(kw_only=True)
    params: dict[str, Any] = field(default_factory=dict, kw_only=True)

    def __post_init__(self) -> None:
        if self.function not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.function!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ACTIVATIONS[self.function](x, **self.params)
