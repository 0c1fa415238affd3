"""Division of a sample by one of its own norms (``ai.onnx.ml`` ``Normalizer``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from provgraph.model.ops.base import PassthroughOp


@dataclass(eq=False)
class NormScaling(PassthroughOp):
    """``y = x / ‖x‖`` over the last axis, with ``‖x‖`` the max, L1 or L2 norm of the sample.

    The ONNX-ML ``Normalizer`` (scikit-learn's ``Normalizer`` after skl2onnx):
    ``MAX``: ``‖x‖ = max_k x_k``; ``L1``: ``Σ_k |x_k|``; ``L2``: ``sqrt(Σ_k x_k²)``. A row whose
    norm is zero is left as it is (onnxruntime and scikit-learn do the same).

    The identity rule (Ali et al., ICML 2022; Achtibat et al., ICML 2024): the norm is a
    constant of the sample's forward pass, so ``y_k = s · x_k`` has one edge ``k → k`` and no
    bias; every rule gives such an edge the weight one (LRP-0: ``z/z``), so it is annotated with
    K's one, as a :class:`~provgraph.model.ops.Quotient` is.
    """

    norm: str = field(kw_only=True)

    NORMS: ClassVar[tuple[str, ...]] = ("MAX", "L1", "L2")

    def __post_init__(self) -> None:
        if self.norm not in self.NORMS:
            raise ValueError(f"norm {self.norm!r} is not one of {self.NORMS}")

    def divisor(self, x: torch.Tensor) -> torch.Tensor:
        """``‖x‖`` per sample (keepdim), one where it is zero."""
        if self.norm == "MAX":
            size = x.amax(dim=-1, keepdim=True)
        elif self.norm == "L1":
            size = x.abs().sum(dim=-1, keepdim=True)
        else:
            size = torch.sqrt((x * x).sum(dim=-1, keepdim=True))
        return torch.where(size == 0, torch.ones_like(size), size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.divisor(x)
