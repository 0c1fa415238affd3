"""The backend interface the aggregation driver talks to.

A backend implements :meth:`Backend.propagate`, one step ``R_in ⊕= ⊕_k Θ(r_jk) ⊗ R_out[k]``. The
other methods have numpy defaults; a backend whose relevance lives elsewhere (torch tensors on a
device) overrides them: :meth:`initial` builds the output relevance in its own arrays,
:meth:`accumulate` ⊕-combines two of them where a tensor fans out, and :meth:`to_numpy` converts
the final ones into the ``(n_neurons, n_targets)`` / ``(n_targets,)`` numpy arrays of a
:class:`~provgraph.engine.relevance.Relevance`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from provgraph.algebra.rules import Rule
from provgraph.algebra.semirings import Semiring
from provgraph.algebra.theta import Layer, Theta
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.initialisation import InitSpec, initial_relevance
from provgraph.model.ops import Op


class Backend(ABC):
    """One propagation step per op; the driver handles order and fan-out."""

    name = "backend"
    #: how the backend was chosen when the caller asked for ``"auto"`` (stated in the result)
    selection: str | None = None

    def check(self, graph: AnnotatedGraph) -> None:
        """Raise :class:`~provgraph.errors.BudgetError` when the graph is too large."""

    def result_semiring(self, semiring: Semiring) -> Semiring:
        """The semiring the results are computed in (a backend may pick a carrier)."""
        return semiring

    def describe(self, semiring: Semiring) -> dict[str, Any]:
        """Facts about the computation recorded in ``Relevance.info``."""
        return {}

    def initial(
        self, graph: AnnotatedGraph, init: InitSpec, semiring: Semiring, targets: Sequence[int]
    ) -> Any:
        """The output layer's relevance in the backend's own arrays."""
        return initial_relevance(init, semiring, graph.logits, targets)

    def accumulate(self, semiring: Semiring, a: Any, b: Any) -> Any:
        """``a ⊕ b`` for two relevance arrays of the same tensor."""
        return semiring.add(a, b)

    def to_numpy(
        self, graph: AnnotatedGraph, semiring: Semiring, value: Any, bias: bool = False
    ) -> np.ndarray:
        """A final relevance array (``bias``: a bias source's) as stored in the result."""
        return value

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
