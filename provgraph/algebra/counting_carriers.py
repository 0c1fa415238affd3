"""Counting for huge path counts: float64 counts and log-domain counts.

Exact counting (:class:`~provgraph.algebra.semirings.CountingSemiring`) holds Python integers in
the scipy backend and int64 in the torch backend, which reports an overflow instead of wrapping.
When path counts outgrow int64 (VGG-16 with Θ ≡ 1 has about 10⁴⁰ paths per pixel) two
approximate carriers remain:

- :class:`CountingFloat64Semiring`: (ℝ≥0, +, ×, 0, 1) in float64, relative error about 1e-16 per
  operation, up to about 1.8e308 paths;
- :class:`LogCountingSemiring`: the log semiring (ℝ ∪ {−∞}, logaddexp, +, −∞, 0), isomorphic to
  (ℝ≥0, +, ×) by ``log``: a value ``v`` stands for ``exp(v)`` paths, without any upper bound.

Both subclass :class:`~provgraph.algebra.semirings.CountingSemiring`'s defaults (name
``counting``, LRP-0, threshold Θ = 1e-9, display) and work in every backend.
:func:`counting_semiring` maps a mode name to its semiring.

**Counting never fails by default.** Under the default mode ``"auto"`` a backend counts in exact
int64; when a count outgrows it (a :class:`CountOverflowError` from any backend) the driver
(:func:`provgraph.engine.driver.aggregate`) goes on in the next carrier of :func:`wider_counting`
(int64 → float64 → log) from the op that overflowed, the relevance counted so far recast by
:func:`recast_counts` (a backend that cannot recast reruns the explanation), warns once per
widening with a :class:`CountingFallbackWarning` and records the carrier in
``Relevance.info["counting"]`` and where and why in ``info["counting_reason"]``. float64 was chosen
over an exact multi-limb carrier because counts past 2⁶³ are only ever read as magnitudes
(heatmaps, rankings, ``log10p``) and an exact carrier would cost tens of bytes per count on every
edge of VGG-16; exact counts of any size remain available from the scipy backend (Python integers).
``counting="int64"`` asks for the exact carrier strictly (an overflow raises).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from provgraph.algebra.semirings import CountingSemiring, Semiring
from provgraph.errors import ProvgraphError

#: ``auto``: exact int64, widened by the driver when counts outgrow it; the others are strict
COUNTING_MODES = ("auto", "int64", "float64", "log")


class CountOverflowError(ProvgraphError):
    """Path counts exceed what the exact integer carrier holds."""


class CountingFallbackWarning(UserWarning):
    """Counts outgrew their carrier and were computed in a wider, approximate one."""


class CountingFloat64Semiring(CountingSemiring):
    """Counting in float64: (ℝ≥0, +, ×, 0, 1); exact up to 2⁵³, approximate above."""

    counting_mode = mode = "float64"
    zero, one = 0.0, 1.0
    dtype = np.float64

    def asarray(self, a: Any) -> np.ndarray:
        return np.asarray(a, dtype=np.float64)

    def plus(self, a: Any, b: Any) -> Any:
        return float(a) + float(b)

    def times(self, a: Any, b: Any) -> Any:
        return float(a) * float(b)

    def log10p(self, values: np.ndarray) -> np.ndarray:
        return np.log10(1.0 + np.asarray(values, dtype=np.float64))

    def rank_key(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    torch_carrier = "sum"  # float matrix products that report an overflow to ∞


class LogCountingSemiring(CountingSemiring):
    """Counting in the log domain: a value ``v`` stands for ``exp(v)`` paths (``−∞``: none)."""

    counting_mode = mode = "log"
    zero, one = -np.inf, 0.0
    dtype = np.float64
    add_ufunc, mul_ufunc = np.logaddexp, np.add
    log_scale = True

    def asarray(self, a: Any) -> np.ndarray:
        return np.asarray(a, dtype=np.float64)

    def plus(self, a: Any, b: Any) -> Any:
        return float(np.logaddexp(a, b))

    def times(self, a: Any, b: Any) -> Any:
        return float(a) + float(b)

    def to_float(self, values: np.ndarray) -> np.ndarray:
        """The counts ``exp(v)`` (∞ beyond the float range)."""
        with np.errstate(over="ignore"):
            return np.exp(np.asarray(values, dtype=np.float64))

    def log10p(self, values: np.ndarray) -> np.ndarray:
        """``log10(1 + exp(v))``, without overflow."""
        return np.logaddexp(0.0, np.asarray(values, dtype=np.float64)) / np.log(10.0)

    def rank_key(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    torch_carrier = "generic"  # logaddexp / logsumexp and +


def counting_mode(semiring: Semiring) -> str | None:
    """``"int64"``/``"float64"``/``"log"`` for the counting carriers, ``None`` for others."""
    return semiring.counting_mode


def wider_counting(semiring: Semiring) -> Semiring | None:
    """The carrier the driver falls back to when ``semiring``'s counts overflow, or ``None``.

    Exact int64 counts widen to float64 (exact up to 2⁵³, relative error about 1e-16 per
    operation above it, up to about 1.8e308 paths), float64 to log-domain counts (no bound);
    any other semiring, and the log carrier, has nothing wider.
    """
    wider = {"int64": CountingFloat64Semiring, "float64": LogCountingSemiring}
    mode = semiring.counting_mode
    return wider[mode]() if mode in wider and isinstance(semiring, CountingSemiring) else None


def recast_counts(values: Any, source: Semiring, target: Semiring) -> np.ndarray:
    """Counts held in ``source``'s carrier as ``target``'s values.

    int64 (or Python integer) counts become float64 counts ``float(n)`` (exact up to 2⁵³, one
    rounding above: what float64 counting computes for the same sum up to its own roundings)
    or log counts ``log n``; float64 counts become log counts. ``0`` paths is ``log 0 = −∞``,
    the log carrier's zero.
    """
    counts = np.asarray(values, dtype=np.float64)
    if source.counting_mode == "log" or target.counting_mode != "log":
        return counts
    with np.errstate(divide="ignore"):
        return np.log(counts)


def counting_semiring(mode: str) -> Semiring:
    """The counting semiring of ``mode`` (``auto``/``int64``/``exact``, ``float64`` or ``log``)."""
    key = str(mode).lower()
    if key in ("auto", "int64", "exact"):
        return CountingSemiring()
    if key == "float64":
        return CountingFloat64Semiring()
    if key == "log":
        return LogCountingSemiring()
    raise ProvgraphError(f"unknown counting mode {mode!r}; use auto, int64, float64 or log")
