"""The built-in rules and Θs in the form the torch kernels use.

Every built-in rule has edge weights ``r_jk = z_jk / den_k`` whose numerator is a sum of
*separable* terms, ``z_jk = Σ_t s_t(a)_j · v_t(w_jk)`` (a modified input times a modified weight),
with a bias numerator ``b'_k`` and a denominator that is either the stabilised sum
``Σ_j z_jk + b'_k`` or, for the max-normalised rule, ``max(|b_k|, max_j |z_jk|) + ε``. This is
exactly :meth:`provgraph.algebra.rules.Rule.edge_weights` (bias as neuron 0 with ``a_0 = 1``,
ε·sign with
sign(0) = +1, a zero denominator gives 0), written so that a kernel never needs the edge list:

- the real semiring with Θ = identity uses the *gradient form*
  ``R_j = Σ_t s_t(a)_j · [Vᵀ_t (R / den)]_j`` (one adjoint per term, e.g. a transposed conv);
- the other semirings evaluate ``r`` chunk by chunk from ``s_t(a)`` and ``v_t(w)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from provgraph.algebra.rules import (
    LRPZB,
    Flat,
    LRPEpsilon,
    LRPGamma,
    LRPZero,
    MaxNormalized,
    Rule,
    WSquare,
)
from provgraph.errors import ProvgraphError

WeightMap = Callable[[torch.Tensor], torch.Tensor]


def unchanged(w: torch.Tensor) -> torch.Tensor:
    return w


def _ones(w: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(w)


def _square(w: torch.Tensor) -> torch.Tensor:
    return w**2


def _neg_pos(w: torch.Tensor) -> torch.Tensor:
    return -w.clamp(min=0)


def _neg_neg(w: torch.Tensor) -> torch.Tensor:
    return -w.clamp(max=0)


def _gamma(gamma: float) -> WeightMap:
    def modify(w: torch.Tensor) -> torch.Tensor:
        return w + gamma * w.clamp(min=0)

    return modify


@dataclass(frozen=True)
class Term:
    """One separable numerator term: source ``a`` | ``one`` | ``abs`` | ``low`` | ``high``."""

    source: str
    weight: WeightMap


@dataclass(frozen=True)
class RuleForm:
    """A rule as modified inputs × modified weights over a stabilised denominator.

    ``bias`` maps ``b`` to the bias numerator ``b'`` (``None``: the bias edge gets 0).
    ``direct``: the denominator is the op's own output (unmodified weights and bias).
    """

    rule: Rule
    terms: tuple[Term, ...]
    bias: WeightMap | None
    epsilon: float = 0.0
    maxnorm: bool = False
    direct: bool = False

    def source(self, term: Term, a: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """``s_t(a)`` for activations ``a`` of shape ``(B, *shape)``."""
        if term.source == "a":
            return a
        if term.source == "abs":
            return a.abs()
        if term.source == "one":
            return torch.ones_like(a)
        bound = self.rule.low if term.source == "low" else self.rule.high  # type: ignore[attr-defined]
        arr = np.asarray(bound, dtype=np.float64).reshape(-1)
        t = torch.as_tensor(arr, dtype=a.dtype, device=a.device)
        if arr.size > 1:
            if arr.size != int(np.prod(shape)):
                raise ProvgraphError(
                    f"{self.rule!r}: bounds have {arr.size} entries, the input has "
                    f"{int(np.prod(shape))} neurons"
                )
            return t.reshape((1,) + tuple(shape)).expand_as(a)
        return t.reshape(()).expand_as(a)

    def stabilize(self, den: torch.Tensor) -> torch.Tensor:
        if self.maxnorm:
            return den + self.epsilon
        if self.epsilon == 0:
            return den
        # ε·sign(den), sign(0) = +1; a −0.0 denominator gets −ε, harmless: all its numerators
        # are ±0 then, so every edge weight is ±0 either way
        eps = torch.tensor(self.epsilon, dtype=den.dtype, device=den.device)
        return torch.copysign(eps, den).add_(den)

    @property
    def guarded(self) -> bool:
        """Whether a denominator can be zero (then its edges get 0, not a division)."""
        return not self.maxnorm and self.epsilon == 0

    def divide(self, num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        """``num / den`` with the rule's convention for a zero denominator."""
        if not self.guarded:  # max-normalised: plain division; ε > 0: |den| ≥ ε
            return num / den
        return torch.where(den != 0, num / den, torch.zeros((), dtype=num.dtype, device=num.device))

    def divide_(self, num: torch.Tensor, den: torch.Tensor, nonzero: bool) -> torch.Tensor:
        """:meth:`divide` overwriting ``num``; ``nonzero``: ``den`` is known to have no zero."""
        if not self.guarded or nonzero:
            return num.div_(den)
        return self.divide(num, den)

    def nonzero(self, den: torch.Tensor) -> bool:
        """Whether ``den`` has no zero (then division needs no guard)."""
        return not self.guarded or not bool((den == 0).any())


def rule_form(rule: Rule) -> RuleForm:
    """The torch form of a built-in rule (exact type match; subclasses may change semantics)."""
    kind = type(rule)
    a, one = "a", "one"
    if kind is LRPZero:
        return RuleForm(rule, (Term(a, unchanged),), unchanged, 0.0, direct=True)
    if kind is LRPEpsilon:
        return RuleForm(rule, (Term(a, unchanged),), unchanged, rule.epsilon, direct=True)
    if kind is LRPGamma:
        modify = _gamma(rule.gamma)
        bias = modify if rule.modify_bias else unchanged
        return RuleForm(rule, (Term(a, modify),), bias, rule.epsilon)
    if kind is LRPZB:
        terms = (Term(a, unchanged), Term("low", _neg_pos), Term("high", _neg_neg))
        return RuleForm(rule, terms, None)
    if kind is Flat:
        return RuleForm(rule, (Term(one, _ones),), None)
    if kind is WSquare:
        return RuleForm(rule, (Term(one, _square),), None)
    if kind is MaxNormalized:
        abs_ = torch.abs
        return RuleForm(rule, (Term("abs", abs_),), abs_, rule.epsilon, maxnorm=True)
    raise ProvgraphError(
        f"the torch backend has no kernel for the rule {rule!r}; built-in rules are lrp0, "
        "epsilon, gamma, zb, maxnorm, flat and wsquare (use backend='scipy' for others)"
    )
