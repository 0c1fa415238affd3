"""Θ : ℝ → K, the conversion of real edge weights into semiring values.

A Θ is called with the real weights of one layer's edges, the semiring, and the layer (its op and
its index among the linear ops), so a Θ may differ per layer (seed: per-layer thresholds).
Edges of activations and routing ops are annotated with K's one directly and never see Θ.

Each Θ evaluates itself on numpy arrays (``__call__``) and on tensors (:meth:`Theta.on_tensor`,
written with tensor methods only, so this module does not import torch); a user-defined Θ needs
only ``__call__``, its tensor form then goes through numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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

    def on_tensor(self, r: Any, carrier: Any, layer: Layer) -> Any:
        """Θ of a tensor of edge weights, in ``carrier`` (a torch carrier of the semiring).

        The base class evaluates the numpy Θ (a round trip through the CPU).
        """
        values = self(r.detach().cpu().double().numpy(), carrier.semiring, layer)
        return carrier.encode(values)

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

    def on_tensor(self, r: Any, carrier: Any, layer: Layer) -> Any:
        return r.to(carrier.storage)


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
        self.theta = _finite_threshold(theta)
        self.per_layer = {k: _finite_threshold(v) for k, v in dict(per_layer or {}).items()}

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

    def on_tensor(self, r: Any, carrier: Any, layer: Layer) -> Any:
        return carrier.from_mask(r >= self.threshold_for(layer))


def _finite_threshold(value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ProvgraphError(f"a threshold Θ must be a number, not {value!r}") from None
    if not math.isfinite(value):
        raise ProvgraphError(f"a threshold Θ must be a finite number, not {value}")
    return value


class ConstantOne(Theta):
    """Θ ≡ 1: every edge present; with Counting it counts all paths."""

    name = "one"

    def __call__(self, r: np.ndarray, semiring: Semiring, layer: Layer) -> np.ndarray:
        return semiring.ones(r.shape)

    def on_tensor(self, r: Any, carrier: Any, layer: Layer) -> Any:
        return carrier.full(tuple(r.shape), carrier.one)


class _LogTheta(Theta):
    """Θ(x) = sign · log x for x > 0; an edge with x ≤ 0 carries no path and maps to K's zero."""

    sign = 1.0

    def __call__(self, r: np.ndarray, semiring: Semiring, layer: Layer) -> np.ndarray:
        # log x → sign·(−∞) as x → 0: that limit must be K's zero, or paths of vanishing weight
        # would be worth more than no path at all (and ∞ × 0 would appear in ⊗)
        limit = -self.sign * math.inf
        if semiring.zero != limit:
            raise ProvgraphError(
                f"Θ = {'−' if self.sign < 0 else ''}log needs a semiring whose zero is "
                f"{'+' if limit > 0 else '−'}∞ (like {'tropical' if limit > 0 else 'max-plus'}); "
                f"{semiring.name} has zero {semiring.zero!r}: use the identity or a threshold"
            )
        out = np.full(r.shape, semiring.zero, dtype=np.float64)
        pos = r > 0
        out[pos] = self.sign * np.log(r[pos])
        return semiring.asarray(out)

    def on_tensor(self, r: Any, carrier: Any, layer: Layer) -> Any:
        logs = r.clamp(min=0).log() * self.sign  # log 0 = −∞; x < 0 is masked below
        return carrier.encode(logs.masked_fill(~(r > 0), carrier.zero))


class NegLog(_LogTheta):
    """Θ(x) = −log x for x > 0, K's zero otherwise (tropical: +∞).

    With the tropical semiring (min, +) the cheapest path is the one with the largest product
    of edge weights: ``min_p Σ_e −log r_e = −log max_p Π_e r_e``.
    """

    name = "neglog"
    sign = -1.0


class Log(_LogTheta):
    """Θ(x) = log x for x > 0, K's zero otherwise (arctic / max-plus: −∞).

    With the max-plus semiring (ℝ ∪ {−∞}, max, +, −∞, 0) the result is the log-strength of the
    best path, ``max_p Σ_e log r_e = log max_p Π_e r_e`` (log of Viterbi); with weights in
    [0, 1] (the max-normalised rule) every value is ≤ 0.
    """

    name = "log"


class FunctionTheta(Theta):
    """Θ from a vectorised function ``f(r) -> K array``."""

    name = "function"

    def __init__(self, function: Callable[[np.ndarray], np.ndarray]) -> None:
        self.function = function

    def __call__(self, r: np.ndarray, semiring: Semiring, layer: Layer) -> np.ndarray:
        return semiring.asarray(self.function(r))

    def __repr__(self) -> str:
        return f"FunctionTheta({getattr(self.function, '__qualname__', self.function)})"


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
    names = {
        "identity": IdentityTheta,
        "one": ConstantOne,
        "neglog": NegLog,
        "-log": NegLog,
        "log": Log,
    }
    key = str(theta).lower()
    if key in names:
        return names[key]()
    try:
        return Threshold(float(key))
    except ValueError:
        raise ProvgraphError(
            f"unknown Θ {theta!r}; use a number (threshold), identity, one, neglog or log"
        ) from None


def default_theta(semiring: Semiring) -> Theta:
    """The semiring's own default Θ (:attr:`~provgraph.algebra.semirings.Semiring.default_theta`;
    seed-faithful for the built-ins: threshold 1e-9 for Boolean/Counting, −log for tropical)."""
    spec = semiring.default_theta
    if spec is None:
        raise ProvgraphError(f"the {semiring.name} semiring's default_theta must not be None")
    return get_theta(spec, semiring)
