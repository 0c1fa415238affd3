"""Edge-weight rules: the real-valued, semiring-independent ``r_jk`` of a linear op's edges.

A rule sees the edges of one linear op as flat arrays (:class:`EdgeSet`) and returns one weight
per edge plus one per bias edge. Conventions shared by every rule: the bias is neuron 0 with
``a_0 = 1`` and ``w_0k = b_k``; a zero denominator gives ``r = 0`` for all edges into that ``k``.

References
----------
Bach et al. "On pixel-wise explanations for non-linear classifier decisions by layer-wise
relevance propagation". PLOS ONE 2015.
Montavon et al. "Layer-wise relevance propagation: an overview". In: Explainable AI, 2019.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from provgraph.errors import ProvgraphError


@dataclass
class EdgeSet:
    """The edges ``j → k`` of one linear op, flattened over all its inputs.

    Attributes
    ----------
    a : (E,) activation of each edge's source neuron
    w : (E,) weight of each edge
    col : (E,) output neuron ``k`` of each edge
    row : (E,) flat index of each edge's source neuron within its input tensor
    bias : (n_out,) bias ``b_k`` (zeros when the op has no bias)
    is_input : whether the op reads the network input (rules needing input bounds check this)
    """

    a: np.ndarray
    w: np.ndarray
    col: np.ndarray
    row: np.ndarray
    bias: np.ndarray
    is_input: bool = False

    @property
    def n_out(self) -> int:
        return len(self.bias)

    def column_sum(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self.col, weights=values, minlength=self.n_out)


def _safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _stabilize(den: np.ndarray, epsilon: float) -> np.ndarray:
    """``den + ε·sign(den)`` with ``sign(0) = +1`` (the convention of Captum and Zennit)."""
    if epsilon == 0:
        return den
    return den + epsilon * np.where(den >= 0, 1.0, -1.0)


class Rule:
    """Base class: subclasses implement :meth:`edge_weights`."""

    name = "rule"

    def edge_weights(self, edges: EdgeSet) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(r_edges (E,), r_bias (n_out,))``."""
        raise NotImplementedError

    def _ratio(
        self, edges: EdgeSet, num: np.ndarray, bias_num: np.ndarray, epsilon: float
    ) -> tuple[np.ndarray, np.ndarray]:
        den = _stabilize(edges.column_sum(num) + bias_num, epsilon)
        return _safe_divide(num, den[edges.col]), _safe_divide(bias_num, den)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))


class LRPZero(Rule):
    r"""LRP-0: :math:`r_{jk} = z_{jk} / z_k`, :math:`z_{jk} = a_j w_{jk}`, bias included."""

    name = "lrp0"

    def edge_weights(self, edges: EdgeSet) -> tuple[np.ndarray, np.ndarray]:
        return self._ratio(edges, edges.a * edges.w, edges.bias, 0.0)


class LRPEpsilon(Rule):
    r"""LRP-ε: :math:`r_{jk} = z_{jk} / (z_k + ε\,\mathrm{sign}(z_k))`."""

    name = "epsilon"

    def __init__(self, epsilon: float = 1e-6) -> None:
        self.epsilon = float(epsilon)

    def edge_weights(self, edges: EdgeSet) -> tuple[np.ndarray, np.ndarray]:
        return self._ratio(edges, edges.a * edges.w, edges.bias, self.epsilon)


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

    def edge_weights(self, edges: EdgeSet) -> tuple[np.ndarray, np.ndarray]:
        w = edges.w + self.gamma * np.maximum(edges.w, 0)
        b = edges.bias
        if self.modify_bias:
            b = b + self.gamma * np.maximum(b, 0)
        return self._ratio(edges, edges.a * w, b, self.epsilon)


class LRPZB(Rule):
    r"""z^B (input layer, :math:`l \le x \le h`):
    :math:`r_{jk} = (x_j w_{jk} - l_j w_{jk}^+ - h_j w_{jk}^-) / Σ_{j'} (\cdot)`.

    ``low`` and ``high`` are scalars or arrays over the input neurons; the bias term cancels
    (``b - b⁺ - b⁻ = 0``).
    """

    name = "zb"

    def __init__(self, low: float | np.ndarray = 0.0, high: float | np.ndarray = 1.0) -> None:
        self.low = low
        self.high = high

    def _bound(self, value: float | np.ndarray, rows: np.ndarray) -> np.ndarray:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
        return arr[rows] if arr.size > 1 else np.broadcast_to(arr, rows.shape)

    def edge_weights(self, edges: EdgeSet) -> tuple[np.ndarray, np.ndarray]:
        low, high = self._bound(self.low, edges.row), self._bound(self.high, edges.row)
        w = edges.w
        num = edges.a * w - low * np.maximum(w, 0) - high * np.minimum(w, 0)
        return self._ratio(edges, num, np.zeros(edges.n_out), 0.0)

    def __repr__(self) -> str:
        low, high = np.asarray(self.low).tolist(), np.asarray(self.high).tolist()
        return f"LRPZB(low={low!r}, high={high!r})"


class MaxNormalized(Rule):
    r"""Max-normalised magnitude (Viterbi): :math:`r_{jk} = |z_{jk}| / (\max_{j'} |z_{j'k}| + ε)`.

    Values lie in [0, 1]; the bias ``|b_k|`` takes part in the maximum.
    """

    name = "maxnorm"

    def __init__(self, epsilon: float = 1e-9) -> None:
        self.epsilon = float(epsilon)

    def edge_weights(self, edges: EdgeSet) -> tuple[np.ndarray, np.ndarray]:
        z = np.abs(edges.a * edges.w)
        b = np.abs(edges.bias)
        m = b.copy()
        np.maximum.at(m, edges.col, z)
        den = m + self.epsilon
        return z / den[edges.col], b / den


class Flat(Rule):
    """Flat: every edge into ``k`` gets ``1 / n_k`` (the bias gets nothing)."""

    name = "flat"

    def edge_weights(self, edges: EdgeSet) -> tuple[np.ndarray, np.ndarray]:
        ones = np.ones_like(edges.w)
        return self._ratio(edges, ones, np.zeros(edges.n_out), 0.0)


class WSquare(Rule):
    """w²: ``r_jk = w_jk² / Σ_j' w_j'k²`` (the bias gets nothing)."""

    name = "wsquare"

    def edge_weights(self, edges: EdgeSet) -> tuple[np.ndarray, np.ndarray]:
        return self._ratio(edges, edges.w**2, np.zeros(edges.n_out), 0.0)


RULES: dict[str, type[Rule]] = {
    cls.name: cls for cls in (LRPZero, LRPEpsilon, LRPGamma, LRPZB, MaxNormalized, Flat, WSquare)
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
