"""Routing ops: pure data movement, edges annotated one, no arithmetic."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from provgraph.model.ops.base import RouteOp, Shape


@dataclass(eq=False)
class Identity(RouteOp):
    """Output equals input (Identity, Dropout at inference, Cast between float types)."""

    propagates_non_finite = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@dataclass(eq=False)
class Reshape(RouteOp):
    """Reshape to ``shape`` (without the batch axis)."""

    propagates_non_finite = True

    shape: Shape = field(kw_only=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape((x.shape[0],) + tuple(self.shape))


@dataclass(eq=False)
class Flatten(RouteOp):
    """Flatten everything after the batch axis."""

    propagates_non_finite = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)
