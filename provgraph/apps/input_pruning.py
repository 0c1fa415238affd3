"""Seed 004's input pruning: drop the inputs that are unimportant on average over a sampled
dataset, and measure accuracy as a function of the fraction of inputs kept.

Step 1, :class:`MeanInputRelevance`: over the ranking samples, the sum of each input's
relevance for each sample's target, per case (exact for Boolean and Counting), and the sum of
the real LRP-0 relevance (the tie-breaker). Inputs are ranked by the sum in the semiring's order
(:func:`provgraph.apps.ranking.ranked_indices`). Step 2, :class:`InputPruning`: on other
samples, keep the top fraction of every ranking (and of a seeded random order), set the rest to
the baseline, re-classify. Both are :class:`~provgraph.apps.streaming.Reduction` s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from provgraph.apps.datasets import Chunk
from provgraph.apps.model_job import Case, ModelRef, dataset_targets, softmax
from provgraph.apps.perturbation import replacement_values
from provgraph.apps.ranking import ranked_indices
from provgraph.apps.streaming import exact_add, exact_sum
from provgraph.errors import InputError

DEFAULT_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)
TIE_BREAK = "real LRP-0 (tie-breaker)"


class MeanInputRelevance:
    """Per case, the sum over samples of each input's relevance (and the samples' count)."""

    def __init__(self, model: ModelRef, cases: Sequence[Case], targets: str = "predicted"
                 ) -> None:
        self.model, self.cases, self.targets = model, tuple(cases), targets

    def map(self, chunk: Chunk) -> tuple[int, dict[str, np.ndarray]]:
        """``(samples, case label → summed relevance (F,))``."""
        x = self.model.batch(chunk.x)
        targets = dataset_targets(chunk, self.model.logits(x), self.targets)
        sums = {TIE_BREAK: exact_sum(self.model.tie_breaker(x, targets))}
        for case in self.cases:
            values = np.asarray(self.model.explain(case, x, targets).input).reshape(len(x), -1)
            sums[case.label] = exact_sum(values)
        return len(x), sums

    def combine(self, a: tuple[int, dict[str, np.ndarray]], b: tuple[int, dict[str, np.ndarray]]
                ) -> tuple[int, dict[str, np.ndarray]]:
        """Sums of both (exact for integers)."""
        return a[0] + b[0], {k: exact_add(v, b[1][k]) for k, v in a[1].items()}

    def finish(self, partial: tuple[int, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Case label → inputs from most to least relevant on average."""
        from provgraph.algebra.semirings import get_semiring

        _, sums = partial
        second = np.asarray(sums[TIE_BREAK], dtype=np.float64)
        return {c.label: ranked_indices(get_semiring(c.semiring), sums[c.label],
                                        None if c.semiring == "real" else second)
                for c in self.cases}


@dataclass(frozen=True)
class PruningPartial:
    """Sums over samples per (ranking, fraction): correct, agreeing, confidence."""

    n: int
    labelled: int
    correct: dict[tuple[str, float], int]
    agree: dict[tuple[str, float], int]
    confidence: dict[tuple[str, float], float]


class InputPruning:
    """Accuracy with only the top ``fraction`` of each ranking's inputs kept.

    Parameters
    ----------
    model : ModelRef
        The classifier.
    orders : dict
        Ranking name → inputs from most to least relevant, ``(F,)``; a seeded ``"random
        order"`` is added.
    fractions : sequence of float
        Fractions of inputs kept, in (0, 1].
    perturb_baseline : str or float
        What a dropped input becomes (see
        :func:`~provgraph.apps.perturbation.replacement_values`).
    seed : int
        Seed of the random order.
    """

    def __init__(self, model: ModelRef, orders: dict[str, np.ndarray],
                 fractions: Sequence[float] = DEFAULT_FRACTIONS,
                 perturb_baseline: str | float = "zero", seed: int = 0) -> None:
        for f in fractions:
            if not 0 < float(f) <= 1:
                raise InputError(f"a fraction of inputs kept must lie in (0, 1], got {f}")
        n = len(next(iter(orders.values())))
        self.orders = {**orders, "random order": np.random.default_rng(seed).permutation(n)}
        self.model, self.fractions = model, tuple(float(f) for f in fractions)
        self.baseline = perturb_baseline

    def map(self, chunk: Chunk) -> PruningPartial:
        """Re-classify the chunk with each ranking's top inputs kept."""
        from provgraph.apps.faithfulness import input_layout

        shape = tuple(self.model.network.input_shape)
        x = self.model.batch(chunk.x).reshape(len(chunk.indices), -1)
        pred = dataset_targets(chunk, self.model.logits(x.reshape((len(x), *shape))),
                               "predicted")  # also checks the labels
        fill = replacement_values(x, self.baseline, input_layout(self.model.network))
        rows = np.arange(len(x))
        correct, agree, confidence = {}, {}, {}
        for name, order in self.orders.items():
            for f in self.fractions:
                keep = np.zeros(x.shape[1], dtype=bool)
                keep[order[: int(round(f * x.shape[1]))]] = True
                p = softmax(self.model.logits(np.where(keep, x, fill).reshape((len(x), *shape))))
                new = np.argmax(p, axis=1)
                key = (name, f)
                correct[key] = int(np.sum(new == chunk.labels)) if chunk.labels is not None else 0
                agree[key] = int(np.sum(new == pred))
                confidence[key] = float(np.sum(p[rows, pred]))
        return PruningPartial(len(x), len(x) if chunk.labels is not None else 0, correct, agree,
                              confidence)

    def combine(self, a: PruningPartial, b: PruningPartial) -> PruningPartial:
        """Sums of both partials."""
        return PruningPartial(a.n + b.n, a.labelled + b.labelled,
                              {k: v + b.correct[k] for k, v in a.correct.items()},
                              {k: v + b.agree[k] for k, v in a.agree.items()},
                              {k: v + b.confidence[k] for k, v in a.confidence.items()})

    def finish(self, p: PruningPartial) -> dict[str, dict[float, dict[str, float]]]:
        """Ranking → fraction kept → accuracy (``nan`` without labels), agreement, confidence."""
        out: dict[str, dict[float, dict[str, Any]]] = {}
        for (name, f), c in p.correct.items():
            out.setdefault(name, {})[f] = {
                "accuracy": c / p.labelled if p.labelled else float("nan"),
                "agreement": p.agree[(name, f)] / p.n,
                "confidence": p.confidence[(name, f)] / p.n,
            }
        return out


def format_pruning(curves: dict[str, dict[float, dict[str, float]]]) -> str:
    """Accuracy per ranking (rows) and fraction of inputs kept (columns)."""
    fractions = sorted(next(iter(curves.values())))
    lines = [["ranking"] + [f"keep {f:.0%}" for f in fractions]]
    for name, row in curves.items():
        lines.append([name] + [f"{row[f]['accuracy']:.3f}" for f in fractions])
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines)
