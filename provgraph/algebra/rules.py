r"""Edge-weight rules: the real-valued, semiring-independent ``r_jk`` of a linear op's edges.

Every rule is one declaration, a :class:`RuleForm`, and every backend evaluates that declaration
(the numpy reference here, the torch kernels, any later kernel). For one linear op with inputs
``a_j``, weights ``w_jk`` and bias ``b_k`` a form states

.. math::

    z_{jk} = \sum_t s_t(a)_j \, v_t(w_{jk}), \qquad b'_k = v_b(b_k), \qquad
    r_{jk} = z_{jk} / d_k, \qquad r_{0k} = b'_k / d_k,

where each *source* ``s_t`` is one of ``"a"`` (``a``), ``"abs"`` (``|a|``), ``"one"`` (``1``),
``"low"`` or ``"high"`` (the bounds ``l``, ``h`` of the input), each *modified weight* ``v`` is a
linear combination ``Weights(w=…, pos=…, neg=…, abs=…, sq=…, one=…)`` of ``w``, ``w⁺``, ``w⁻``,
``|w|``, ``w²`` and ``1`` (:class:`Weights`), and the denominator is either the
stabilised sum ``d_k = s + ε·sign(s)`` with ``s = Σ_j z_jk + b'_k`` and ``sign(0) = +1``, or
the max-norm ``d_k = max(|b'_k|, max_j |z_jk|) + ε``. The bias is neuron 0 with ``a_0 = 1``;
without a bias numerator the bias edge gets 0 and takes no part in the denominator. A zero
denominator gives ``r = 0`` on every edge into that ``k``, never NaN.

LRP-0, ε and γ (Bach et al. 2015; Montavon et al. 2019), z^B (Montavon et al. 2017), the
max-normalised rule, flat and w² are written in this form below. A user rule is a
:class:`Rule` subclass whose :attr:`Rule.form` returns its declaration; it then runs on every
backend::

    from provgraph.algebra.rules import Rule, RuleForm, Term, Weights

    class HalfNegative(Rule):
        '''r_jk = a_j v(w_jk) / (Σ_j' a_j' v(w_j'k) + v(b_k) ± ε), v(w) = w + ½ w⁻.'''

        name = "halfneg"

        def __init__(self, epsilon: float = 1e-6) -> None:
            self.epsilon = epsilon

        @property
        def form(self) -> RuleForm:
            v = Weights(w=1.0, neg=0.5)  # v(w) = w + ½ min(w, 0)
            return RuleForm(terms=(Term("a", v),), bias=v, epsilon=self.epsilon)

The form is plain data (floats, strings, tuples; bounds may be arrays) so that compiled kernels
can read it without calling Python.

References
----------
Bach et al. "On pixel-wise explanations for non-linear classifier decisions by layer-wise
relevance propagation". PLOS ONE 10(7), 2015.
Montavon et al. "Explaining nonlinear classification decisions with deep Taylor
decomposition". Pattern Recognition 65, 2017.
Montavon et al. "Layer-wise relevance propagation: an overview". In: Explainable AI:
Interpreting, Explaining and Visualizing Deep Learning, LNCS 11700, 2019.
"""

from __future__ import annotations

import numpy as np

from provgraph.algebra.rule_form import (
    DENOMINATORS,
    IDENTITY,
    SOURCES,
    Bound,
    EdgeSet,
    RuleForm,
    RuleFormError,
    Term,
    Weights,
)
from provgraph.errors import ProvgraphError

__all__ = [
    "AttentionRule",
    "AttnLRP",
    "ConservativeAttention",
    "DENOMINATORS",
    "IDENTITY",
    "LRPZB",
    "RULES",
    "SOURCES",
    "EdgeSet",
    "Flat",
    "LRPEpsilon",
    "LRPGamma",
    "LRPZero",
    "MaxNormalized",
    "Rule",
    "RuleForm",
    "RuleFormError",
    "Term",
    "WSquare",
    "Weights",
    "declared_form",
    "get_rule",
]

class Rule:
    """Base class of rules: a subclass declares its :attr:`form` (a property computed from the
    rule's parameters, or a class attribute holding a fixed :class:`RuleForm`).

    :meth:`edge_weights` evaluates the form with numpy. A subclass may override it instead of
    declaring a form; such a rule runs on the scipy backend only (see :func:`declared_form`).
    """

    name = "rule"

    @property
    def form(self) -> RuleForm:
        """The rule's declaration."""
        raise RuleFormError(f"{self!r} declares no form")

    def edge_weights(self, edges: EdgeSet) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(r_edges (E,), r_bias (n_out,))``."""
        return self.form.edge_weights(edges)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={_plain(v)!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))


def _plain(value: object) -> object:
    return np.asarray(value).tolist() if isinstance(value, np.ndarray) else value


def declared_form(rule: Rule) -> RuleForm:
    """The form that defines ``rule``, for backends that evaluate forms rather than call numpy.

    Raises
    ------
    RuleFormError
        When the rule declares no form, or overrides :meth:`Rule.edge_weights` (its form, if
        inherited, then no longer says what it computes).
    """
    if type(rule).edge_weights is not Rule.edge_weights:
        raise RuleFormError(
            f"{rule!r} overrides edge_weights; declare the rule as a RuleForm (its `form` "
            "property) to run it on every backend"
        )
    form = rule.form
    if not isinstance(form, RuleForm):
        raise RuleFormError(f"{rule!r}.form must be a RuleForm, not {type(form).__name__}")
    return form


def _plain_form(v: Weights, epsilon: float = 0.0) -> RuleForm:
    return RuleForm(terms=(Term("a", v),), bias=v, epsilon=epsilon)


class LRPZero(Rule):
    r"""LRP-0: :math:`r_{jk} = z_{jk} / z_k`, :math:`z_{jk} = a_j w_{jk}`, bias included."""

    name = "lrp0"

    @property
    def form(self) -> RuleForm:
        return _plain_form(IDENTITY)


class LRPEpsilon(Rule):
    r"""LRP-ε: :math:`r_{jk} = z_{jk} / (z_k + ε\,\mathrm{sign}(z_k))`."""

    name = "epsilon"

    def __init__(self, epsilon: float = 1e-6) -> None:
        self.epsilon = float(epsilon)

    @property
    def form(self) -> RuleForm:
        return _plain_form(IDENTITY, self.epsilon)


class AttentionRule(Rule):
    r"""LRP-ε on linear ops (ε = 0: LRP-0) together with a treatment of products of two
    computed tensors (attention), read by those ops through :attr:`attention`.

    ``cp`` (Ali et al., ICML 2022): the attention weights are constants of the forward pass, the
    product ``A V`` is token mixing with weights from ``A``, and ``Q``, ``K`` receive nothing.
    ``attnlrp`` (Achtibat et al., ICML 2024): the uniform rule on products (each factor half of
    :math:`z_{ijk}/z_{ik}`) and the softmax's Taylor rule. Any other rule on a product means
    ``cp`` with that rule's edge weights. See :mod:`provgraph.model.ops.attention`.
    """

    attention = "cp"

    def __init__(self, epsilon: float = 0.0) -> None:
        self.epsilon = float(epsilon)

    @property
    def form(self) -> RuleForm:
        return _plain_form(IDENTITY, self.epsilon)


class ConservativeAttention(AttentionRule):
    """``cp``: CP-LRP (attention weights constant; Ali et al., ICML 2022)."""

    name = "cp"
    attention = "cp"


class AttnLRP(AttentionRule):
    """``attnlrp``: AttnLRP's uniform and softmax rules (Achtibat et al., ICML 2024)."""

    name = "attnlrp"
    attention = "attnlrp"


class LRPGamma(Rule):
    r"""LRP-γ: :math:`r_{jk} = a_j (w_{jk} + γ w_{jk}^+) / Σ_{j'} a_{j'} (w_{j'k} + γ w_{j'k}^+)`.

    The bias, as neuron 0, gets the same treatment (``b + γ b⁺``) unless ``modify_bias`` is false;
    ``epsilon`` stabilises the denominator.
    """

    name = "gamma"

    def __init__(self, gamma: float = 0.25, epsilon: float = 1e-9, modify_bias: bool = True):
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)
        self.modify_bias = bool(modify_bias)

    @property
    def form(self) -> RuleForm:
        v = Weights(w=1.0, pos=self.gamma)
        return RuleForm((Term("a", v),), v if self.modify_bias else IDENTITY, epsilon=self.epsilon)


class LRPZB(Rule):
    r"""z^B (input layer, :math:`l \le x \le h`):
    :math:`r_{jk} = (x_j w_{jk} - l_j w_{jk}^+ - h_j w_{jk}^-) / Σ_{j'} (\cdot)`.

    ``low`` and ``high`` are scalars or arrays over the input neurons; the bias term cancels
    (``b - b⁺ - b⁻ = 0``), so the bias edge gets nothing.
    """

    name = "zb"

    def __init__(self, low: Bound = 0.0, high: Bound = 1.0) -> None:
        self.low = low
        self.high = high

    @property
    def form(self) -> RuleForm:
        terms = (
            Term("a", IDENTITY),
            Term("low", Weights(pos=-1.0)),
            Term("high", Weights(neg=-1.0)),
        )
        return RuleForm(terms, None, low=self.low, high=self.high)


class MaxNormalized(Rule):
    r"""Max-normalised magnitude (Viterbi): :math:`r_{jk} = |z_{jk}| / (\max_{j'} |z_{j'k}| + ε)`.

    Values lie in [0, 1]; the bias ``|b_k|`` takes part in the maximum.
    """

    name = "maxnorm"

    def __init__(self, epsilon: float = 1e-9) -> None:
        self.epsilon = float(epsilon)

    @property
    def form(self) -> RuleForm:
        v = Weights(abs=1.0)
        return RuleForm((Term("abs", v),), v, denominator="maxnorm", epsilon=self.epsilon)


class Flat(Rule):
    """Flat: every edge into ``k`` gets ``1 / n_k`` (the bias gets nothing)."""

    name = "flat"

    @property
    def form(self) -> RuleForm:
        return RuleForm((Term("one", Weights(one=1.0)),))


class WSquare(Rule):
    """w²: ``r_jk = w_jk² / Σ_j' w_j'k²`` (the bias gets nothing)."""

    name = "wsquare"

    @property
    def form(self) -> RuleForm:
        return RuleForm((Term("one", Weights(sq=1.0)),))


RULES: dict[str, type[Rule]] = {
    cls.name: cls
    for cls in (
        LRPZero, LRPEpsilon, LRPGamma, LRPZB, MaxNormalized, Flat, WSquare,
        ConservativeAttention, AttnLRP,
    )
}


def get_rule(rule: str | Rule) -> Rule:
    """A rule from an instance or a name (``lrp0``, ``epsilon``, ``gamma``, ``zb``, …).

    Names may carry one parameter after a colon: ``epsilon:0.01``, ``gamma:0.5``.
    """
    if isinstance(rule, Rule):
        return rule
    key, _, param = str(rule).lower().partition(":")
    aliases = {"0": "lrp0", "lrp-0": "lrp0", "eps": "epsilon", "z^b": "zb", "w2": "wsquare"}
    key = aliases.get(key, key)
    if key not in RULES:
        raise ProvgraphError(f"unknown rule {rule!r}; known rules: {', '.join(RULES)}")
    try:
        return RULES[key](float(param)) if param else RULES[key]()
    except (TypeError, ValueError):
        raise ProvgraphError(f"rule {key!r} does not take the parameter {param!r}") from None
