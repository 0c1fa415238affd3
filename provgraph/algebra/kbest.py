"""The k-best (top-k Viterbi) semiring: the k largest path products, not only the largest.

An element is a :class:`TopK`, the multiset of at most ``k`` path scores kept in decreasing
order; for path scores in [0, 1] (the max-normalised rule)::

    a ⊕ b = top_k(a ∪ b)        a ⊗ b = top_k({x·y : x ∈ a, y ∈ b})
    0 = ∅                        1 = {1}

which is a commutative semiring (the k-best semiring of Huang and Chiang 2005; Mohri 2002),
whose ``k = 1`` case is Viterbi. Aggregated over the provenance graph it gives, for every neuron,
the scores of its ``k`` best paths to the explained class; :mod:`provgraph.apps.paths` follows
them back through the edges to list the paths themselves.

References
----------
Huang, Chiang. "Better k-best parsing". IWPT 2005.
Mohri. "Semiring frameworks and algorithms for shortest-distance problems". Journal of Automata,
Languages and Combinatorics 7(3), 2002.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from provgraph.algebra.semirings import Semiring
from provgraph.errors import ProvgraphError


class TopK:
    """At most ``k`` path scores, largest first (an element of :class:`KBestSemiring`).

    Not a sequence on purpose: numpy stores it as one object, never as an axis.
    """

    __slots__ = ("scores",)

    def __init__(self, scores: tuple[float, ...] = ()) -> None:
        self.scores = tuple(scores)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TopK) and self.scores == other.scores

    def __hash__(self) -> int:
        return hash(self.scores)

    def __float__(self) -> float:
        """The best score (0 without a path)."""
        return float(self.scores[0]) if self.scores else 0.0

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        return "TopK(" + ", ".join(f"{s:.4g}" for s in self.scores) + ")"


class KBestSemiring(Semiring):
    """(top-k multisets of [0, ∞) scores, top-k of union, top-k of products, ∅, {1}).

    Parameters
    ----------
    k : int
        How many path scores each neuron keeps (``k = 1`` is the Viterbi semiring).

    A real number ``x`` given where an element is expected (an edge's Θ under the identity Θ)
    is the element ``{x}``, or ``∅`` when ``x ≤ 0`` (no path through a non-positive edge).
    """

    name = "kbest"
    dtype = object
    idempotent = False  # {a} ⊕ {a} = {a, a}
    absorptive = False
    default_rule = "maxnorm"
    default_theta = "identity"
    colormap, colorbar_label = "magma", "best path strength"

    def __init__(self, k: int = 5) -> None:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ProvgraphError(f"the k-best semiring needs a positive integer k, got {k!r}")
        self.k = int(k)
        self.zero = TopK(())
        self.one = TopK((1.0,))

    @staticmethod
    def element(v: Any) -> TopK:
        """``v`` as a :class:`TopK` (a number ``x > 0`` is ``{x}``, else ``∅``)."""
        if isinstance(v, TopK):
            return v
        x = float(v)
        return TopK((x,)) if x > 0 else TopK(())

    def plus(self, a: Any, b: Any) -> TopK:
        """``top_k(a ∪ b)``."""
        a, b = self.element(a), self.element(b)
        return TopK(tuple(heapq.nlargest(self.k, a.scores + b.scores)))

    def times(self, a: Any, b: Any) -> TopK:
        """``top_k({x·y})`` over all pairs."""
        a, b = self.element(a), self.element(b)
        if not a.scores or not b.scores:
            return self.zero
        return TopK(tuple(heapq.nlargest(self.k, (x * y for x in a.scores for y in b.scores))))

    def asarray(self, a: Any) -> np.ndarray:
        if isinstance(a, np.ndarray) and a.dtype == object:
            return a
        arr = np.asarray(a)
        out = np.empty(arr.shape, dtype=object)
        out.reshape(-1)[:] = [self.element(v) for v in arr.reshape(-1)]
        return out

    def zeros(self, shape: tuple[int, ...] | int) -> np.ndarray:
        return np.full(shape, self.zero, dtype=object)

    def ones(self, shape: tuple[int, ...] | int) -> np.ndarray:
        return np.full(shape, self.one, dtype=object)

    def isclose(self, a: np.ndarray, b: np.ndarray, rtol: float = 1e-9) -> np.ndarray:
        """Equal lengths and scores equal within ``rtol``."""
        def close(x: TopK, y: TopK) -> bool:
            return len(x) == len(y) and bool(np.allclose(x.scores, y.scores, rtol=rtol, atol=0))

        pairs = zip(self.asarray(a).reshape(-1), self.asarray(b).reshape(-1))
        return np.asarray([close(x, y) for x, y in pairs]).reshape(np.shape(a))

    def scores(self, values: np.ndarray) -> np.ndarray:
        """``(…, k)`` float scores, padded with 0 where fewer than ``k`` paths exist."""
        arr = self.asarray(values)
        out = np.zeros(arr.shape + (self.k,))
        flat = out.reshape(-1, self.k)
        for i, v in enumerate(arr.reshape(-1)):
            flat[i, : len(v)] = v.scores
        return out

    def __repr__(self) -> str:
        return f"KBestSemiring(k={self.k})"
