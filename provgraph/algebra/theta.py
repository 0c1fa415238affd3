"""Θ : ℝ → K, the conversion of real edge weights into semiring values.

A Θ is called with the real weights of one layer's edges, the semiring, and the layer (its op and
its index among the linear ops), so a Θ may differ per layer (seed: per-layer thresholds).
Edges of activations and routing ops are annotated with K's one directly and never see Θ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from provgraph.algebra.semirings import Semiring
from provgraph.errors import ProvgraphError
from provgraph.model.ops import Op


@dataclass(frozen=True)
class Layer:
    """A linear op and its index among the network's linear ops (0 = input side)."""

    op: Op
    index: int
    count: int


class Theta:
    """Base class: subclasses implement ``__call__(r, semiring, layer) -> K array``."""

    name = "theta"

    def __call__(self, r: np.ndarray, semiring: Semiring, layer: Layer) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class IdentityTheta(Theta):
    """Θ(x) = x, for semirings whose carrier holds reals (real, Viterbi, fuzzy, tropical)."""

    name = "identity"

    def __call__(self, r: np.ndarray, semiring: Semiring, layer: Layer) -> np.ndarray:
        dtype = np.dtype(semiring.dtype)
        generic = dtype.kind == "O"
        if not np.issubdtype(dtype, np.floating) and not generic:
            raise ProvgraphError(
                f"identity Θ maps to reals, but the {semiring.name} semiring holds {dtype}; "
                "use a threshold Θ"
            )
        return r.astype(object) if generic else semiring.asarray(r)


class Threshold(Theta):
    """Θ(x) = 1 if x ≥ θ else 0 (⊤/⊥ for Boolean).

    Parameters
    ----------
    theta
        Default threshold.
    per_layer
        Thresholds for particular layers, keyed by op name or linear-layer index (negative
        indices count from the output).
    """

    name = "threshold"

    def __init__(self, theta: float = 1e-9, per_layer: Mapping[str | int, float] | None = None):
        self.theta = float(theta)
        self.per_layer = dict(per_layer or {})

    def threshold_for(self, layer: Layer) -> float:
        for key, value in self.per_layer.items():
            if key == layer.op.name:
                return float(value)
            if isinstance(key, int) and key % layer.count == layer.index:
                return float(value)
        return self.theta

    def __call__(self, r: np.ndarray, semiring: Semiring, layer: Layer) -> np.ndarray:
        keep = r >= self.threshold_for(layer)
        return np.where(keep, semiring.ones(r.shape), semiring.zeros(r.shape))


class ConstantOne(Theta):
    """Θ ≡ 1: every edge present; with Counting it counts all paths."""

    name = "one"

    def __call__(self, r: np.ndarray, semiring: Semiring, layer: Layer) -> np.ndarray:
        return semiring.ones(r.shape)


class NegLog(Theta):
    """Θ(x) = −log x for x > 0 and +∞ (the tropical zero) otherwise: best path = cheapest."""

    name = "neglog"

    def __call__(self, r: np.ndarray, semiring: Semiring, layer: Layer) -> np.ndarray:
        out = np.full(r.shape, np.inf)
        pos = r > 0
        out[pos] = -np.log(r[pos])
        return semiring.asarray(out)


class FunctionTheta(Theta):
    """Θ from a vectorised function ``f(r) -> K array``."""

    name = "function"

    def __init__(self, function: Callable[[np.ndarray], np.ndarray]) -> None:
        self.function = function

    def __call__(self, r: np.ndarray, semiring: Semiring, layer: Layer) -> np.ndarray:
        return semiring.asarray(self.function(r))


def get_theta(theta: Theta | str | float | Callable | None, semiring: Semiring) -> Theta:
    """Θ from an instance, a name, a number (a threshold) or ``None`` (the semiring's default)."""
    if theta is None:
        return default_theta(semiring)
    if isinstance(theta, Theta):
        return theta
    if isinstance(theta, (int, float)) and not isinstance(theta, bool):
        return Threshold(float(theta))
    if callable(theta):
        return FunctionTheta(theta)
    names = {"identity": IdentityTheta, "one": ConstantOne, "neglog": NegLog, "-log": NegLog}
    key = str(theta).lower()
    if key in names:
        return names[key]()
    try:
        return Threshold(float(key))
    except ValueError:
        raise ProvgraphError(
            f"unknown Θ {theta!r}; use a number (threshold), identity, one or neglog"
        ) from None


def default_theta(semiring: Semiring) -> Theta:
    """Seed-faithful defaults: threshold 1e-9 for Boolean/Counting, −log for tropical."""
    if semiring.name in ("boolean", "counting"):
        return Threshold(1e-9)
    if semiring.name == "tropical":
        return NegLog()
    return IdentityTheta()
