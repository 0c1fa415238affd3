"""The backend interface the aggregation driver talks to."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..annotate import AnnotatedGraph
from ..ops import Op
from ..rules import Rule
from ..semirings import Semiring
from ..theta import Layer, Theta


class Backend(ABC):
    """One propagation step per op; the driver handles order and fan-out."""

    name = "backend"

    def check(self, graph: AnnotatedGraph) -> None:
        """Raise :class:`~provgraph.errors.BudgetError` when the graph is too large."""

    @abstractmethod
    def propagate(
        self,
        graph: AnnotatedGraph,
        op: Op,
        rule: Rule | None,
        theta: Theta | None,
        layer: Layer | None,
        semiring: Semiring,
        r_out: np.ndarray,
    ) -> tuple[list[tuple[str, np.ndarray]], np.ndarray | None]:
        """Relevance sent to each input tensor of ``op`` and absorbed by its bias source.

        ``r_out`` is ``(n_out, n_targets)`` in K. Returns ``([(tensor, (n_in, n_targets))…],
        bias (n_targets,) or None)``.
        """
