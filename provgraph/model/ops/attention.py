r"""Attention: products of two computed tensors and the softmax inside the network.

**The bilinear role.** :class:`MatProduct` computes ``z = a @ b`` (batched over leading axes)
where both operands are computed from the input (``Q Kᵀ``, ``A V``). Every term
``a_ij b_jk`` of ``z_ik = Σ_j a_ij b_jk`` is one pair of candidate edges:

- an edge ``a_ij → z_ik`` whose "weight" is the other factor, ``w = b_jk``;
- an edge ``b_jk → z_ik`` with ``w = a_ij``.

Both have ``z = a_ij b_jk``. Which of them exist is the attention rule's choice
(:class:`~provgraph.algebra.rules.AttentionRule`), made per op through the composite:

``cp``
    Conservative propagation (Ali et al., "XAI for Transformers: Better Explanations through
    Conservative Propagation", ICML 2022). The attention weights (the operand computed by a
    Softmax, :attr:`MatProduct.weights_operand`) are constants of the forward pass: only the
    edges from the other operand exist. ``A V`` is linear token mixing, with LRP-0 weights
    ``r = A_ij V_jk / z_ik``; ``Q`` and ``K`` receive no relevance, and no path runs through
    them.
``attnlrp``
    The uniform rule (Achtibat et al., "AttnLRP: Attention-Aware Layer-Wise Relevance
    Propagation for Transformers", ICML 2024, Eq. 7). Both edges exist. The rule's denominator
    sums over all of them, ``Σ = 2 z_ik``, so LRP-0 gives each factor half:
    ``r = a_ij b_jk / (2 z_ik)`` on both edges.

**The softmax** (:class:`AttentionSoftmax`) is a linear op whose weights are constants of the
sample's forward pass: its first-order Taylor expansion at the sample's own input ``x``,

.. math::

    s_k = \sum_i J_{ki} x_i + b_k, \qquad J_{ki} = s_k (\delta_{ik} - s_i), \qquad
    b_k = s_k - \sum_i J_{ki} x_i,

one edge ``x_i → s_k`` of weight ``J_ki`` for every pair in the same row, and a bias source
``b_k``. LRP-0 gives ``r_ik = x_i (δ_ik − s_i)``, AttnLRP's softmax rule (Achtibat et al. 2024,
Eq. 9: ``R_i = x_i (R_i − s_i Σ_k R_k)``). Under ``cp`` the softmax receives no relevance (its
output is the constant ``A``), so its edges never carry any.

All edge annotations are real numbers, so Θ maps them into every semiring as for any other edge.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from provgraph.model.ops.base import LinearOp, Result, RoleSteps, Shape, csr_from_edges

#: attention rules and the operands whose edges each keeps
ATTENTION_MODES = ("cp", "attnlrp")


def attention_mode(rule: Any) -> str:
    """The attention treatment a rule asks for: its ``attention`` attribute, else ``"cp"``."""
    return str(getattr(rule, "attention", "cp"))


class BilinearOp(LinearOp):
    """Base of products of two computed tensors: ``provenance_step`` calls ``steps.bilinear``.

    The op's weights (:meth:`sample_structure`) hold the edges from both operands; the rule
    chooses which of them exist (:meth:`edge_inputs`).
    """

    role = "bilinear"

    def provenance_step(self, steps: RoleSteps[Result], context: Any) -> Result:
        return steps.bilinear(self, context)  # type: ignore[attr-defined]

    def edge_inputs(self, rule: Any) -> tuple[int, ...]:
        """Indices of the inputs whose edges exist under ``rule`` (see the module notes)."""
        raise NotImplementedError


@dataclass(eq=False)
class MatProduct(BilinearOp):
    """``z = a @ b`` of two computed tensors with the same leading axes (batch first).

    Attributes
    ----------
    weights_operand : the operand that holds the attention weights (computed by a Softmax), which
        ``cp`` takes as constant; the other one carries the paths.
    """

    propagates_non_finite = True

    weights_operand: int = field(default=0, kw_only=True)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)

    def edge_inputs(self, rule: Any) -> tuple[int, ...]:
        if attention_mode(rule) == "attnlrp":
            return (0, 1)
        return (1 - self.weights_operand,)

    @staticmethod
    def dims(in_shapes: list[Shape]) -> tuple[int, int, int, int]:
        """``(L, m, n, p)``: leading positions and the matrix sizes ``(m, n) @ (n, p)``."""
        a, b = in_shapes
        return math.prod(a[:-2]), a[-2], a[-1], b[-1]

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        raise NotImplementedError(f"{self.describe()}: weights come from each sample")

    def sample_structure(
        self, in_shapes: list[Shape], out_shape: Shape, inputs: Sequence[torch.Tensor]
    ) -> tuple[list[sp.csr_array], np.ndarray | None]:
        n_l, m, n, p = self.dims(in_shapes)
        a = inputs[0].detach().to(torch.float64).reshape(n_l, m, n).cpu().numpy()
        b = inputs[1].detach().to(torch.float64).reshape(n_l, n, p).cpu().numpy()
        ll, i, j, k = (g.reshape(-1) for g in np.meshgrid(
            np.arange(n_l), np.arange(m), np.arange(n), np.arange(p), indexing="ij"))
        out = (ll * m + i) * p + k
        a_index = (ll * m + i) * n + j
        b_index = (ll * n + j) * p + k
        n_out = n_l * m * p
        from_a = csr_from_edges(a_index, out, b[ll, j, k], (n_l * m * n, n_out))
        from_b = csr_from_edges(b_index, out, a[ll, i, j], (n_l * n * p, n_out))
        return [from_a, from_b], None

    def num_edges(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        n_l, m, n, p = self.dims(in_shapes)
        return 2 * n_l * m * n * p


@dataclass(eq=False)
class AttentionSoftmax(LinearOp):
    """``softmax(x)`` along the last axis, linear through its Taylor expansion at ``x``
    (see the module notes). Masked entries (``x = −∞``) carry no edge weight."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=-1)

    @staticmethod
    def jacobian(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(J, b, x')`` for rows ``x (…, n)``: ``J[…, i, k] = s_k (δ_ik − s_i)`` (input ``i``,
        output ``k``), the bias ``b_k = s_k − Σ_i J_ik x'_i``, and ``x`` with ``−∞`` set to 0."""
        s = torch.softmax(x, dim=-1)
        finite = torch.where(torch.isfinite(x), x, torch.zeros((), dtype=x.dtype))
        eye = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
        jac = s.unsqueeze(-2) * (eye - s.unsqueeze(-1))
        bias = s - (finite.unsqueeze(-1) * jac).sum(dim=-2)
        return jac, bias, finite

    def weight_matrices(self, in_shapes: list[Shape], out_shape: Shape) -> list[sp.csr_array]:
        raise NotImplementedError(f"{self.describe()}: weights come from each sample")

    def bias_vector(self, out_shape: Shape) -> np.ndarray | None:
        return np.zeros(int(np.prod(out_shape)))

    def sample_structure(
        self, in_shapes: list[Shape], out_shape: Shape, inputs: Sequence[torch.Tensor]
    ) -> tuple[list[sp.csr_array], np.ndarray | None]:
        x = inputs[0].detach().to(torch.float64).cpu()
        n = x.shape[-1]
        rows = math.prod(x.shape[1:-1])
        with torch.no_grad():
            jac, bias, _ = self.jacobian(x.reshape(rows, n))
        r, i, k = (g.reshape(-1) for g in np.meshgrid(
            np.arange(rows), np.arange(n), np.arange(n), indexing="ij"))
        size = rows * n
        matrix = csr_from_edges(r * n + i, r * n + k, jac.numpy().reshape(-1), (size, size))
        return [matrix], bias.numpy().reshape(-1)

    def num_edges(self, in_shapes: list[Shape], out_shape: Shape) -> int:
        n = in_shapes[0][-1]
        return int(np.prod(in_shapes[0])) * (n + 1)

