"""Ranking a relevance map: the most relevant inputs, in the semiring's own order.

The primary key is the semiring's :meth:`~provgraph.algebra.semirings.Semiring.rank_key` (larger
is more relevant: largest relevance, most paths, cheapest tropical cost, ⊤ before ⊥). Semirings
with few distinct values (Boolean, Counting) tie often; ties are then ranked by a secondary key,
the real LRP-0 relevance ``R_j`` of the same target (classic LRP with the logit as initial
relevance, :func:`tie_break_relevance`), and finally by input position.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from provgraph.io.inputs import image_layout

#: what :func:`format_top_inputs` says the secondary key is
SECONDARY_KEY = "real LRP-0 relevance"


def _exact_ranks(key: np.ndarray) -> np.ndarray:
    """Dense ranks of an object array of mutually comparable values (exact integers)."""
    values = key.tolist()
    rank = {v: i for i, v in enumerate(sorted(set(values)))}
    return np.array([rank[v] for v in values], dtype=np.int64)


def _primary(semiring: Any, flat: np.ndarray) -> np.ndarray:
    key = np.asarray(semiring.rank_key(flat)).reshape(-1)
    return _exact_ranks(key) if key.dtype == object else key.astype(np.float64)


def ranked_indices(
    semiring: Any, values: np.ndarray, secondary: np.ndarray | None = None
) -> np.ndarray:
    """Flat indices of ``values`` from most to least relevant.

    Ties in the semiring's order go to the larger ``secondary`` value (when given), then to the
    lower index.
    """
    flat = np.asarray(values).reshape(-1)
    keys = [-_primary(semiring, flat)]
    if secondary is not None:
        keys.insert(0, -np.asarray(secondary, dtype=np.float64).reshape(-1))
    return np.lexsort(keys)  # the last key is the primary one; lexsort is stable


def has_ties(semiring: Any, values: np.ndarray, n: int) -> bool:
    """Whether the first ``n + 1`` entries of the ranking hold two equal keys (the order of the
    top ``n`` then depends on how ties are broken)."""
    key = _primary(semiring, np.asarray(values).reshape(-1))
    top = np.sort(key)[::-1][: n + 1]
    return bool(np.any(top[1:] == top[:-1]))


def tie_break_relevance(graph: Any, rel: Any) -> np.ndarray:
    """The secondary key: real LRP-0 relevance of ``rel``'s target on the same graph, shaped
    like the input (one extra real aggregation on the backend that computed ``rel``)."""
    backend = rel.info.get("backend", "auto")
    if backend == "torch" and "device" in rel.info:
        backend = f"torch:{rel.info['device']}"
    real = graph.aggregate("real", rule="lrp0", init="logit", target=rel.target, backend=backend)
    return real.input


def relevant_count(rel: Any) -> tuple[int, int]:
    """``(inputs whose relevance is not K's zero, all inputs)``."""
    flat = np.asarray(rel.input).reshape(-1)
    return int(np.count_nonzero(~rel.semiring.is_zero(flat))), int(flat.size)


def top_inputs(
    rel: Any, n: int, secondary: np.ndarray | None = None
) -> list[tuple[tuple[int, ...], Any]]:
    """The ``n`` most relevant input neurons of ``rel`` as ``(index, value)`` pairs.

    Indices are ``(channel, row, col)`` for image inputs (also a flat input whose size is a
    square image's, as the CLI reads it), else positions in the network's input shape.
    """
    flat = np.asarray(rel.input).reshape(-1)
    shape = image_layout(rel.network.input_shape) or rel.network.input_shape
    order = ranked_indices(rel.semiring, flat, secondary)[:n]
    return [(tuple(int(i) for i in np.unravel_index(j, shape)), flat[j]) for j in order]


def format_top_inputs(rel: Any, n: int, graph: Any = None) -> str:
    """One line: how many inputs are relevant, then the top ``n`` as ``(0, 3, 4)=0.25, …``.

    With ``graph`` (the annotated graph ``rel`` was computed on, or a function returning it),
    ties in the semiring's order are ranked by the real LRP-0 relevance (computed only when ties
    reach the top ``n``).
    """
    flat = np.asarray(rel.input).reshape(-1)
    secondary = None
    if graph is not None and has_ties(rel.semiring, flat, n):
        secondary = tie_break_relevance(graph() if callable(graph) else graph, rel)
    cells = ", ".join(f"{index}={value}" for index, value in top_inputs(rel, n, secondary))
    relevant, total = relevant_count(rel)
    ties = f" (ties ranked by {SECONDARY_KEY})" if secondary is not None else ""
    return f"{relevant} of {total} relevant; top {min(n, total)}: {cells}{ties}"
