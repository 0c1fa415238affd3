"""Θ on torch tensors, and the factored form of a step whose Θ makes the edge product separable.

:class:`TorchTheta` evaluates a :class:`~provgraph.algebra.theta.Theta` on torch tensors with the
numpy Θ's semantics; :func:`factored` recognises steps whose inner ⊕ can skip per-edge Θ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from provgraph.algebra.semirings import Semiring
from provgraph.algebra.theta import IdentityTheta, Layer, Theta
from provgraph.backends.torch_rules import RuleForm, WeightMap, unchanged
from provgraph.backends.torch_semiring import TorchSemiring
from provgraph.errors import ProvgraphError


@dataclass
class Factored:
    """A step whose Θ turns the edge product into a ⊗-product:
    ``⊕_k Θ(s_j v_jk / den_k) ⊗ R_k = Θ(s_j) ⊗ ⊕_k (Θ(v_jk) ⊗ t_k)``.

    Used where ⊗ is real multiplication and ⊕ is max (Viterbi, and any semiring declared with
    ``np.maximum``/``np.multiply``) with Θ = identity (``t = R / den``) and one-term rules with
    ``s ≥ 0``, because ``max_k c·x_k = c·max_k x_k`` for ``c ≥ 0``: the
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
    if not (theta.is_identity and _max_times(theta.semiring, theta.carrier)):
        return None
    if not bool((s >= 0).all()):
        return None
    return Factored(unchanged, unchanged, form.divide(r_out, den.unsqueeze(1)))


def _max_times(semiring: Semiring, carrier: TorchSemiring) -> bool:
    """⊕ = max and ⊗ = × on a float carrier, declared by the semiring's own numpy ufuncs."""
    plain = semiring.torch_add is None and semiring.torch_mul is None
    ops = (semiring.add_ufunc, semiring.mul_ufunc) == (np.maximum, np.multiply)
    return plain and ops and carrier.storage.is_floating_point


class TorchTheta:
    """Θ evaluated on torch tensors (:meth:`~provgraph.algebra.theta.Theta.on_tensor`), with the
    semantics of the numpy Θ it wraps."""

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
        return self.theta.on_tensor(r, self.carrier, self.layer)
