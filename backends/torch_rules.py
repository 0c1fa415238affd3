"""A rule's declaration (:class:`~provgraph.algebra.rule_form.RuleForm`) evaluated on torch tensors.

The torch kernels never see an edge list: for a form with numerator terms
``z_jk = Σ_t s_t(a)_j · v_t(w_jk)``, bias numerator ``b'_k`` and denominator ``d_k``,

- the real semiring with Θ = identity uses the *gradient form*
  ``R_j = Σ_t s_t(a)_j · [V_tᵀ (R / d)]_j`` (one adjoint per term, e.g. a transposed conv);
- the other semirings evaluate ``r_jk = z_jk / d_k`` chunk by chunk from ``s_t(a)`` and
  ``v_t(w)``.

Any rule that declares a form runs here; nothing depends on the rule's class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from provgraph.algebra.rule_form import IDENTITY, RuleForm, RuleFormError, Term, Weights
from provgraph.algebra.rules import Rule, declared_form

__all__ = ["RuleForm", "Term", "TorchForm", "WeightMap", "Weights", "rule_form", "unchanged"]

WeightMap = Callable[[torch.Tensor], torch.Tensor]
"""A modified-weight map on tensors (every :class:`Weights` is one)."""

unchanged: Weights = IDENTITY
"""``v(w) = w``: returns its argument itself."""


@dataclass(frozen=True, eq=False)
class TorchForm(RuleForm):
    """A :class:`RuleForm` with the operations the torch kernels need.

    ``rule`` is the rule the form declares (named in error messages).
    """

    rule: Any = field(default=None, repr=False)

    @classmethod
    def of(cls, form: RuleForm, rule: Rule | None = None) -> TorchForm:
        return cls(form.terms, form.bias, form.denominator, form.epsilon, form.low, form.high, rule)

    def source(self, term: Term, a: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """``s_t(a)`` for activations ``a`` of shape ``(B, *shape)``."""
        if term.source == "a":
            return a
        if term.source == "abs":
            return a.abs()
        if term.source == "one":
            return torch.ones_like(a)
        arr = np.asarray(self.bound(term.source), dtype=np.float64).reshape(-1)
        t = torch.as_tensor(arr, dtype=a.dtype, device=a.device)
        if arr.size > 1:
            if arr.size != int(np.prod(shape)):
                raise RuleFormError(
                    f"{self.rule!r}: the {term.source} bound has {arr.size} entries, the input "
                    f"has {int(np.prod(shape))} neurons"
                )
            return t.reshape((1,) + tuple(shape)).expand_as(a)
        return t.reshape(()).expand_as(a)

    def stabilize(self, den: torch.Tensor) -> torch.Tensor:
        """``d`` from the raw denominator: ``+ ε`` (max-norm) or ``+ ε·sign`` (sum)."""
        if self.maxnorm:
            return den + self.epsilon
        if self.epsilon == 0:
            return den
        # ε·sign(den), sign(0) = +1; a −0.0 denominator gets −ε, harmless: all its numerators
        # are ±0 then, so every edge weight is ±0 either way
        eps = torch.tensor(self.epsilon, dtype=den.dtype, device=den.device)
        return torch.copysign(eps, den).add_(den)

    def divide(self, num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
        """``num / den`` with the rule's convention for a zero denominator."""
        if not self.guarded:  # ε > 0: |den| ≥ ε
            return num / den
        if den.device.type == "cpu":  # one check of the quotients instead of a select
            quotient = num / den
            if math.isfinite(quotient.sum().item()):  # no zero denominator (nor an overflow)
                return quotient
        return torch.where(den != 0, num / den, torch.zeros((), dtype=num.dtype, device=num.device))

    def divide_(self, num: torch.Tensor, den: torch.Tensor, nonzero: bool) -> torch.Tensor:
        """:meth:`divide` overwriting ``num``; ``nonzero``: ``den`` is known to have no zero."""
        if not self.guarded or nonzero:
            return num.div_(den)
        return self.divide(num, den)

    def nonzero(self, den: torch.Tensor) -> bool:
        """Whether ``den`` has no zero (then division needs no guard)."""
        return not self.guarded or not bool((den == 0).any())


def rule_form(rule: Rule) -> TorchForm:
    """The torch evaluation of the form that ``rule`` declares.

    Raises
    ------
    RuleFormError
        When the rule is not defined by a form (it declares none, or overrides
        ``edge_weights``).
    """
    try:
        form = declared_form(rule)
    except RuleFormError as exc:
        raise RuleFormError(
            f"the torch backend has no kernel for the rule {rule!r}: {exc} "
            "(or use backend='scipy')"
        ) from None
    return TorchForm.of(form, rule)
