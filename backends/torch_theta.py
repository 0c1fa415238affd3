"""Θ on torch tensors, and the factored form of a step whose Θ makes the edge product separable.

:class:`TorchTheta` evaluates a :class:`~provgraph.algebra.theta.Theta` on torch tensors with the
numpy Θ's semantics; :func:`factored` recognises steps whose inner ⊕ can skip per-edge Θ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from provgraph.algebra.semirings import Semiring, ViterbiSemiring
from provgraph.algebra.theta import ConstantOne, IdentityTheta, Layer, NegLog, Theta, Threshold
from provgraph.backends.torch_rules import RuleForm, WeightMap, unchanged
from provgraph.backends.torch_semiring import TorchSemiring
from provgraph.errors import ProvgraphError


def neglog(x: torch.Tensor) -> torch.Tensor:
    """−log x, +∞ where x ≤ 0 (or NaN): Θ = −log on torch tensors."""
    return torch.log(x).neg_().nan_to_num_(nan=np.inf, posinf=np.inf, neginf=-np.inf)


@dataclass
class Factored:
    """A step whose Θ turns the edge product into a ⊗-product:
    ``⊕_k Θ(s_j v_jk / den_k) ⊗ R_k = Θ(s_j) ⊗ ⊕_k (Θ(v_jk) ⊗ t_k)``.

    Used for Viterbi with Θ = identity (``t = R / den``) and one-term rules with ``s ≥ 0``: the
    inner ⊕ then touches each edge twice (one ⊗, one ⊕) instead of evaluating ``r`` and Θ per
    edge. (Tropical with Θ = −log factors the same way, ``−log s_j − log v_jk + log den_k``, but
    near-zero costs then lose their relative precision to cancellation, so it is not used.)
    """

    outer: WeightMap
    inner: WeightMap
    t: torch.Tensor  # (B, T, *out)


def factored(
    form: RuleForm,
    theta: TorchTheta | None,
    s: torch.Tensor,
    den: torch.Tensor,
    r_out: torch.Tensor,
) -> Factored | None:
    """The factored form of a step, or ``None`` when it does not apply."""
    if theta is None or len(form.terms) != 1:
        return None
    if (type(theta.semiring), theta.kind) != (ViterbiSemiring, IdentityTheta):
        return None
    if not bool((s >= 0).all()):
        return None
    return Factored(unchanged, unchanged, form.divide(r_out, den.unsqueeze(1)))


class TorchTheta:
    """Θ evaluated on torch tensors, with the semantics of the numpy Θ it wraps."""

    def __init__(self, theta: Theta, semiring: Semiring, carrier: TorchSemiring, layer: Layer):
        self.theta, self.semiring, self.carrier, self.layer = theta, semiring, carrier, layer
        # the numpy Θ on no edges validates the (Θ, semiring) pair with its own message
        theta(np.zeros(0), semiring, layer)
        self.kind = type(theta)
        if self.kind is IdentityTheta and carrier.storage in (torch.int64, torch.bool):
            raise ProvgraphError(
                f"identity Θ gives real numbers, but {semiring.name} needs "
                f"{'integers' if carrier.storage == torch.int64 else 'booleans'}; "
                "use a threshold Θ"
            )

    @property
    def is_identity(self) -> bool:
        return self.kind is IdentityTheta

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        c = self.carrier
        if self.kind is Threshold:
            return c.from_mask(r >= self.theta.threshold_for(self.layer))  # type: ignore[attr-defined]
        if self.kind is ConstantOne:
            return c.full(tuple(r.shape), c.one)
        if self.kind is IdentityTheta:
            return r.to(c.storage)
        if self.kind is NegLog:
            return c.encode(neglog(r))
        values = self.theta(r.detach().cpu().double().numpy(), self.semiring, self.layer)
        return c.encode(values)
