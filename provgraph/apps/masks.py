"""Class-wise input masks from relevance over a dataset (seed 000, "Image mask computation").

For class c with samples S_c (by label or by predicted class) and per-sample input relevance
R_i of the class explained for sample i:

- Boolean relevance frequency ``f_c[j] = |{i ∈ S_c : R_i[j] = ⊤}| / |S_c|``;
- the mask at threshold τ, ``M_c^τ = {j : f_c[j] ≥ τ}``; the AND mask ``{j : f_c[j] = 1}``
  (relevant in every sample) and the OR mask ``{j : f_c[j] > 0}`` (in some sample);
- for comparison, the mean Counting relevance (relevant paths) and the mean real relevance per
  pixel, and masks of the same sizes as the Boolean ones made of their top pixels (ties broken by
  the real mean, then by position: :func:`provgraph.apps.ranking.ranked_indices`).

:class:`ClassRelevance` is a :class:`~provgraph.apps.streaming.Reduction`: the per-class sums are
exact integers for Boolean and Counting, so the result does not depend on the chunking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from provgraph.apps.datasets import Chunk
from provgraph.apps.model_job import Case, ModelRef, case_record, dataset_targets
from provgraph.apps.ranking import ranked_indices
from provgraph.apps.streaming import ClassPartial, ClassStatistics, ClassSummary
from provgraph.errors import InputError

DEFAULT_CASES = (Case("boolean"), Case("counting"), Case("real"))
DEFAULT_THRESHOLDS = (0.5, 0.75, 0.9)


class ClassRelevance:
    """Per-class sums, non-zero counts and sample counts of input relevance, for several cases.

    Parameters
    ----------
    model : ModelRef
        The classifier (a path or bytes, loaded lazily; the reduction pickles without it).
    cases : sequence of Case
        Semirings (with rule and Θ) to explain every sample in.
    n_classes : int
        Number of classes of the model.
    targets : {"label", "predicted"}
        Which class each sample is explained for, and grouped under.
    """

    def __init__(self, model: ModelRef, cases: Sequence[Case] = DEFAULT_CASES,
                 n_classes: int = 10, targets: str = "label") -> None:
        if targets not in ("label", "predicted"):
            raise InputError(f"targets must be 'label' or 'predicted', got {targets!r}")
        if not cases:
            raise InputError("no semiring to compute masks in")
        self.model, self.cases = model, tuple(cases)
        self.n_classes, self.targets = int(n_classes), targets

    def map(self, chunk: Chunk) -> dict[Case, ClassPartial]:
        """Explain the chunk in every case, each sample for its own target; per-class sums."""
        x = self.model.batch(chunk.x)
        logits = self.model.logits(x)
        targets = dataset_targets(chunk, logits, self.targets)
        out = {}
        for case in self.cases:
            rel = self.model.explain(case, x, targets)
            values = np.asarray(rel.input).reshape(len(x), -1)
            out[case] = ClassStatistics(self.n_classes).map(Chunk(chunk.indices, values, targets))
        return out

    def combine(self, a: dict[Case, ClassPartial], b: dict[Case, ClassPartial]
                ) -> dict[Case, ClassPartial]:
        """Case by case, the sums of both partials (exact for Boolean and Counting)."""
        stats = ClassStatistics(self.n_classes)
        return {case: stats.combine(a[case], b[case]) for case in self.cases}

    def finish(self, partial: dict[Case, ClassPartial]) -> ClassRelevanceSummary:
        """One :class:`~provgraph.apps.streaming.ClassSummary` per case."""
        stats = ClassStatistics(self.n_classes)
        return ClassRelevanceSummary({c: stats.finish(p) for c, p in partial.items()},
                                     self.targets, self.model.record())


@dataclass(frozen=True)
class ClassRelevanceSummary:
    """The per-class statistics of each case, how targets were chosen, and the model record."""

    summaries: dict[Case, ClassSummary]
    targets: str
    model: dict[str, str]

    def of(self, semiring: str) -> tuple[Case, ClassSummary]:
        """The first case in ``semiring`` and its summary."""
        for case, summary in self.summaries.items():
            if case.semiring == semiring:
                return case, summary
        raise InputError(f"no {semiring} relevance was computed (cases: "
                         f"{', '.join(c.label for c in self.summaries)})")

    @property
    def counts(self) -> np.ndarray:
        """Samples per class."""
        return next(iter(self.summaries.values())).counts

    def record(self) -> dict[str, Any]:
        """Model, targets and every case's semiring, rule and Θ, for outputs."""
        return {**self.model, "targets": self.targets,
                "cases": [case_record(c) for c in self.summaries]}


@dataclass(frozen=True)
class MaskSet:
    """One mask per class: ``masks`` (classes, inputs) bool, and how it was made."""

    name: str
    masks: np.ndarray
    how: str

    @property
    def sizes(self) -> np.ndarray:
        """Pixels in each class's mask."""
        return self.masks.sum(axis=1)


def check_thresholds(thresholds: Sequence[float]) -> None:
    """A one-line error unless every threshold lies in (0, 1] and there is one."""
    if not len(thresholds):
        raise InputError("no frequency threshold given")
    for tau in thresholds:
        if not 0 < float(tau) <= 1:
            raise InputError(f"a frequency threshold must lie in (0, 1], got {tau}")


def boolean_masks(summary: ClassSummary, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                  prefix: str = "boolean") -> list[MaskSet]:
    """Masks from the Boolean frequency: one per threshold τ (``f ≥ τ``), AND and OR.

    AND and OR are exact integer comparisons of the non-zero counts with the sample counts.
    """
    check_thresholds(thresholds)
    freq = summary.frequencies
    counts = summary.counts[:, None]
    sets = [MaskSet(f"{prefix} f≥{float(t):g}", freq >= float(t),
                    f"pixels relevant in at least {float(t):.0%} of the class's samples")
            for t in thresholds]
    sets.append(MaskSet(f"{prefix} AND", (summary.nonzero == counts) & (counts > 0),
                        "pixels relevant in every sample of the class"))
    sets.append(MaskSet(f"{prefix} OR", summary.nonzero > 0,
                        "pixels relevant in some sample of the class"))
    return sets


def top_masks(semiring: Any, summary: ClassSummary, sizes: np.ndarray, name: str,
              secondary: ClassSummary | None = None) -> MaskSet:
    """Per class the ``sizes[c]`` pixels of largest summed relevance in ``semiring``'s order
    (ranked exactly on the sums; ties by ``secondary``'s sums, then by position)."""
    masks = np.zeros(summary.nonzero.shape, dtype=bool)
    for c, size in enumerate(np.asarray(sizes, dtype=np.int64)):
        second = None if secondary is None else secondary.sums[c].astype(np.float64)
        order = ranked_indices(semiring, summary.sums[c], second)
        masks[c, order[: int(size)]] = True
    return MaskSet(name, masks, f"top pixels of the class's mean {semiring.name} relevance")


def all_masks(result: ClassRelevanceSummary,
              thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> list[MaskSet]:
    """The Boolean masks, and for every other case masks of the same sizes from its means."""
    from provgraph.algebra.semirings import get_semiring

    _, boolean = result.of("boolean")
    sets = boolean_masks(boolean, thresholds)
    real = next((s for c, s in result.summaries.items() if c.semiring == "real"), None)
    for case, summary in result.summaries.items():
        if case.semiring == "boolean":
            continue
        k = get_semiring(case.semiring)
        for tau, base in zip(thresholds, sets[: len(thresholds)]):
            sets.append(top_masks(k, summary, base.sizes, f"{case.semiring} top(f≥{float(tau):g})",
                                  real if case.semiring != "real" else None))
    return sets


def summary_arrays(result: ClassRelevanceSummary) -> dict[str, np.ndarray]:
    """Numeric arrays of every case for an ``.npz`` (exact integer sums kept as int64 when they
    fit, else as decimal strings)."""
    arrays: dict[str, np.ndarray] = {"counts": result.counts}
    for case, s in result.summaries.items():
        key = case.semiring
        sums = s.sums
        if sums.dtype == object:
            fits = all(abs(int(v)) < 2**63 for v in sums.reshape(-1))
            sums = sums.astype(np.int64) if fits else sums.astype(str)
        arrays[f"{key}_sums"] = sums
        arrays[f"{key}_nonzero"] = s.nonzero
        arrays[f"{key}_frequency"] = s.frequencies
        if sums.dtype.kind != "U":
            arrays[f"{key}_mean"] = s.means
    return arrays
