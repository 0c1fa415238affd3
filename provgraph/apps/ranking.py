"""Ranking a relevance map: the most relevant inputs, in the semiring's own order."""

from __future__ import annotations

from typing import Any

import numpy as np


def ranked_indices(semiring: Any, values: np.ndarray) -> np.ndarray:
    """Flat indices of ``values`` from most to least relevant (stable for ties)."""
    flat = np.asarray(values).reshape(-1)
    if semiring.name == "tropical":
        return np.argsort(np.asarray(flat, dtype=np.float64), kind="stable")
    if flat.dtype == object:
        return np.array(sorted(range(len(flat)), key=lambda j: -flat[j]), dtype=np.int64)
    return np.argsort(-np.asarray(flat, dtype=np.float64), kind="stable")


def top_inputs(rel: Any, n: int) -> list[tuple[tuple[int, ...], Any]]:
    """The ``n`` most relevant input neurons of ``rel`` as ``(index, value)`` pairs.

    Indices are positions in the network's input shape (``(channel, row, col)`` for images).
    """
    flat = np.asarray(rel.input).reshape(-1)
    shape = rel.network.input_shape
    order = ranked_indices(rel.semiring, flat)[:n]
    return [(tuple(int(i) for i in np.unravel_index(j, shape)), flat[j]) for j in order]


def format_top_inputs(rel: Any, n: int) -> str:
    """``top_inputs`` as one line: ``(0, 3, 4)=0.25, …``."""
    return ", ".join(f"{index}={value}" for index, value in top_inputs(rel, n))
