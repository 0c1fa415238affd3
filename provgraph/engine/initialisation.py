"""Initialisation of the output layer's relevance (one column per explained target)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from provgraph.algebra.semirings import Semiring
from provgraph.errors import ProvgraphError, TargetError


@dataclass(frozen=True)
class Contrastive:
    """Target against another class (real semiring): ``R_target = s_t``, ``R_other = −s_o``.

    With ``scale="one"`` both scores are 1; with ``scale="logit"`` they are the logits, so that
    under LRP-0 the explanation decomposes the logit difference ``z_t − z_o``.
    """

    other: int
    scale: str = "one"


InitSpec = str | Contrastive | Sequence[float] | np.ndarray


def check_target(target: Any, num_classes: int) -> int:
    """``target`` as a class index in range; a 0-d integer array or tensor (what
    ``argmax(...)`` returns) counts as its value."""
    if getattr(target, "ndim", None) == 0 and hasattr(target, "item"):
        target = target.item()
    if isinstance(target, (bool, np.bool_)) or not isinstance(target, (int, np.integer)):
        raise TargetError(f"class index must be an integer, got {target!r}")
    if not 0 <= int(target) < num_classes:
        raise TargetError(
            f"class index {target} is out of range: the model has {num_classes} classes "
            f"(0..{num_classes - 1})"
        )
    return int(target)


def resolve_targets(
    target: int | Sequence[int] | None, num_classes: int, predicted: Any
) -> list[Any]:
    """The explained classes, one result column each.

    ``target`` is a class index, a list of them, or ``None`` for ``predicted`` (the predicted
    class: one index, or one per sample of a batch).
    """
    if target is None:
        return [predicted]
    if isinstance(target, (list, tuple)) or getattr(target, "ndim", 0) >= 1:
        return [check_target(t, num_classes) for t in target]
    return [check_target(target, num_classes)]


def initial_relevance(
    init: InitSpec, semiring: Semiring, logits: np.ndarray, targets: Sequence[int]
) -> np.ndarray:
    """``(num_classes, len(targets))`` array in K: the output relevance for each target.

    ``init`` is ``"one"`` (K-LRP: K's one on the target), ``"logit"`` (classic LRP, real only),
    a :class:`Contrastive`, or a user vector over the classes (targets then ignored).
    """
    n = len(logits)
    if isinstance(init, str):
        key = init.lower()
        out = semiring.zeros((n, len(targets)))
        for col, t in enumerate(targets):
            if key == "one":
                out[t, col] = semiring.one
            elif key == "logit":
                _require_real(semiring, "the logit initialisation")
                out[t, col] = logits[t]
            else:
                raise ProvgraphError(
                    f"unknown initialisation {init!r}; use one, logit, a vector or Contrastive"
                )
        return out
    if isinstance(init, Contrastive):
        _require_real(semiring, "the contrastive initialisation")
        other = check_target(init.other, n)
        out = semiring.zeros((n, len(targets)))
        for col, t in enumerate(targets):
            if other == t:
                raise TargetError(f"contrastive class {other} equals the target")
            if init.scale == "logit":
                out[t, col], out[other, col] = logits[t], -logits[other]
            else:
                out[t, col], out[other, col] = 1.0, -1.0
        return out
    try:
        vec = semiring.asarray(init).reshape(-1)
        semiring.add(vec, semiring.mul(vec, vec))  # values ⊕ and ⊗ can take
    except (TypeError, ValueError, ProvgraphError):
        raise ProvgraphError(
            f"the initial relevance must hold values of the {semiring.name} semiring "
            f"(e.g. numbers), not {np.asarray(init).dtype} values"
        ) from None
    if len(vec) != n:
        raise ProvgraphError(f"initial relevance has {len(vec)} entries, the model has {n} classes")
    outside = ~np.isfinite(vec) & (vec != semiring.zero) if vec.dtype.kind == "f" else None
    if outside is not None and outside.any():  # ±∞ only as K's zero (tropical's +∞)
        bad = int(np.flatnonzero(outside)[0])
        raise ProvgraphError(
            f"the initial relevance of class {bad} is {vec[bad]}; it must be a finite number"
        )
    return vec[:, None]


def _require_real(semiring: Semiring, what: str) -> None:
    if semiring.name != "real":
        raise ProvgraphError(f"{what} needs the real semiring, not {semiring.name}")
