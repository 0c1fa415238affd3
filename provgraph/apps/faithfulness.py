"""Faithfulness of explanations over a dataset: seed 004's feature removal, pixel flipping and
region perturbation (MoRF, LeRF, random order), AOPC and SRG, per semiring and rule.

Each sample is explained for its target (by default its predicted class) in every
:class:`~provgraph.apps.model_job.Case`; its inputs are ranked in the semiring's order with
:func:`provgraph.apps.ranking.ranked_indices` — ties (frequent in Boolean and Counting) go to the
larger real LRP-0 relevance of the same target (logit initialisation), then to the lower index.
LeRF is the reverse of that order. A random order (seeded by the sample's dataset index) is the
reference row. The curves and scores are those of :mod:`provgraph.apps.perturbation`.

:class:`Faithfulness` is a :class:`~provgraph.apps.streaming.Reduction`; its partials are sums
over samples, so a dataset can be split anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from provgraph.apps.datasets import Chunk
from provgraph.apps.model_job import Case, ModelRef, case_record, dataset_targets
from provgraph.apps.perturbation import (
    aopc,
    auc,
    patch_ids,
    patch_orders,
    pixel_flipping,
    random_orders,
    region_perturbation,
    removal_test,
    replacement_values,
)
from provgraph.apps.ranking import SECONDARY_KEY, ranked_indices

RANDOM = "random order"
DEFAULT_CASES = (Case("real", "lrp0"), Case("real", "epsilon:0.01"), Case("boolean"),
                 Case("counting"), Case("viterbi"))


@dataclass(frozen=True)
class Settings:
    """The parameters of every test (Quantus's names where it has them).

    ``fraction``: share of inputs seed 004's test removes (0.15); ``perturb_baseline``: what a
    removed input becomes (``"zero"``, ``"mean"``, ``"blur"`` or a number);
    ``features_in_step``: inputs replaced per pixel-flipping step; ``patch_size`` and
    ``regions_evaluation``: region perturbation's patches and how many are replaced;
    ``blur_sigma``: the blur baseline's Gaussian; ``seed``: the random order; ``targets``:
    ``"predicted"`` or ``"label"``.
    """

    fraction: float = 0.15
    perturb_baseline: str | float = "zero"
    features_in_step: int = 8
    patch_size: int = 4
    regions_evaluation: int = 49
    blur_sigma: float = 2.0
    seed: int = 0
    targets: str = "predicted"


def input_layout(network: Any) -> tuple[int, int, int]:
    """One sample as (channels, height, width): an image input's, a flat square's, else 1×1×F."""
    from provgraph.io.inputs import image_layout

    layout = image_layout(network.input_shape)
    if layout is not None:
        return tuple(int(v) for v in layout)  # type: ignore[return-value]
    return (1, 1, int(np.prod(network.input_shape)))


def sample_orders(semiring: Any, values: np.ndarray, secondary: np.ndarray | None) -> np.ndarray:
    """``(B, F)`` per-sample inputs from most to least relevant (ties by ``secondary``)."""
    if secondary is None:
        return np.stack([ranked_indices(semiring, v) for v in values])
    return np.stack([ranked_indices(semiring, v, s) for v, s in zip(values, secondary)])


def score_floats(semiring: Any, values: np.ndarray) -> np.ndarray:
    """The semiring's rank key as floats (patch scores are sums of it)."""
    return np.asarray(semiring.to_float(np.asarray(semiring.rank_key(values))), dtype=np.float64)


@dataclass(frozen=True)
class RowPartial:
    """Sums over samples of one row's curves (``curves``) and per-sample scores (``scores``)."""

    curves: dict[str, np.ndarray]
    scores: dict[str, float]

    def __add__(self, other: RowPartial) -> RowPartial:
        return RowPartial({k: v + other.curves[k] for k, v in self.curves.items()},
                          {k: v + other.scores[k] for k, v in self.scores.items()})


#: ``(samples, labelled samples, row label → sums)``
Partial = tuple[int, int, dict[str, RowPartial]]


class Faithfulness:
    """The faithfulness tests of every case, and of a random order.

    Parameters
    ----------
    model : ModelRef
        The classifier.
    cases : sequence of Case
        Semirings with rule and Θ.
    settings : Settings
        The tests' parameters.
    """

    def __init__(self, model: ModelRef, cases: Sequence[Case] = DEFAULT_CASES,
                 settings: Settings | None = None) -> None:
        self.model, self.cases, self.settings = model, tuple(cases), settings or Settings()

    def map(self, chunk: Chunk) -> Partial:
        """``(samples, labelled, row label → sums)`` of one chunk."""
        from provgraph.algebra.semirings import get_semiring

        s = self.settings
        network = self.model.network
        layout = input_layout(network)
        x = self.model.batch(chunk.x).reshape(len(chunk.indices), -1)
        shape = tuple(network.input_shape)
        logits = self.model.logits(x.reshape((len(x), *shape)))
        targets = dataset_targets(chunk, logits, s.targets)
        replacement = replacement_values(x, s.perturb_baseline, layout, s.blur_sigma)
        patches = patch_ids(layout, s.patch_size)
        secondary = self.model.tie_breaker(x.reshape((len(x), *shape)), targets)
        rows: dict[str, RowPartial] = {}
        for case in self.cases:
            k = get_semiring(case.semiring)
            values = np.asarray(self.model.explain(case, x.reshape((len(x), *shape)),
                                                   targets).input).reshape(len(x), -1)
            ties = None if case.semiring == "real" else secondary
            order = sample_orders(k, values, ties)
            regions = patch_orders(score_floats(k, values), patches, ties)
            rows[case.label] = self._row(x, replacement, targets, chunk.labels, order, regions,
                                         patches, shape)
        n_patches = int(patches.max()) + 1
        rand = random_orders(chunk.indices, x.shape[1], s.seed)
        rand_regions = np.stack([np.random.default_rng([s.seed, 1, int(i)]).permutation(
            n_patches) for i in chunk.indices])
        rows[RANDOM] = self._row(x, replacement, targets, chunk.labels, rand, rand_regions,
                                 patches, shape)
        return len(x), len(x) if chunk.labels is not None else 0, rows

    def _row(self, x: np.ndarray, replacement: np.ndarray, targets: np.ndarray,
             labels: np.ndarray | None, order: np.ndarray, regions: np.ndarray,
             patches: np.ndarray, shape: tuple[int, ...]) -> RowPartial:
        s = self.settings
        predict = self.model.probabilities
        rows = np.arange(len(x))
        curves = {
            "flip morf": pixel_flipping(predict, x, replacement, targets, order,
                                        s.features_in_step, shape),
            "flip lerf": pixel_flipping(predict, x, replacement, targets, order[:, ::-1],
                                        s.features_in_step, shape),
            "region morf": region_perturbation(predict, x, replacement, targets, regions,
                                               patches, s.regions_evaluation, shape),
            "region lerf": region_perturbation(predict, x, replacement, targets,
                                               regions[:, ::-1], patches,
                                               s.regions_evaluation, shape),
        }
        removal = removal_test(predict, x, replacement, order, s.fraction, shape)
        p0 = removal["original"][rows, targets]
        scores = {
            "AUC MoRF": auc(curves["flip morf"]).sum(),
            "AUC LeRF": auc(curves["flip lerf"]).sum(),
            "SRG": (auc(curves["flip lerf"]) - auc(curves["flip morf"])).sum(),
            "AOPC MoRF": aopc(curves["region morf"]).sum(),
            "AOPC LeRF": aopc(curves["region lerf"]).sum(),
            "region SRG": (auc(curves["region lerf"]) - auc(curves["region morf"])).sum(),
        }
        for name in ("least", "most"):
            p = removal[name]
            scores[f"acc −{name}"] = float(np.sum(np.argmax(p, axis=1) == labels)) \
                if labels is not None else 0.0
            scores[f"Δconf −{name}"] = float(np.sum(p[rows, targets] - p0))
            scores[f"conf −{name}"] = float(np.sum(np.max(p, axis=1)))
        scores["acc original"] = float(np.sum(np.argmax(removal["original"], axis=1) == labels)) \
            if labels is not None else 0.0
        scores["conf original"] = float(np.sum(p0))
        return RowPartial({k: v.sum(axis=0) for k, v in curves.items()},
                          {k: float(v) for k, v in scores.items()})

    def combine(self, a: Partial, b: Partial) -> Partial:
        """Sums of both partials."""
        return a[0] + b[0], a[1] + b[1], {k: v + b[2][k] for k, v in a[2].items()}

    def finish(self, partial: Partial) -> FaithfulnessResult:
        """Means over samples (accuracies over the labelled samples)."""
        n, labelled, rows = partial
        table: dict[str, dict[str, float]] = {}
        curves: dict[str, dict[str, np.ndarray]] = {}
        for name, row in rows.items():
            table[name] = {k: v / (labelled if k.startswith("acc") else n) if
                           (labelled or not k.startswith("acc")) else float("nan")
                           for k, v in row.scores.items()}
            curves[name] = {k: v / n for k, v in row.curves.items()}
        record = {**self.model.record(), "settings": asdict(self.settings), "samples": n,
                  "cases": {c.label: case_record(c) for c in self.cases},
                  "ties": f"ranked by {SECONDARY_KEY} of the same target, then by position"}
        return FaithfulnessResult(table, curves, record)


@dataclass(frozen=True)
class FaithfulnessResult:
    """Mean scores per row (case label or the random order), mean curves, and the record."""

    table: dict[str, dict[str, float]]
    curves: dict[str, dict[str, np.ndarray]]
    record: dict[str, Any]

    def format(self, columns: Sequence[str] | None = None) -> str:
        """The table as text, one row per case."""
        cols = list(columns or ["acc −least", "acc −most", "Δconf −least", "Δconf −most",
                                "AUC MoRF", "AUC LeRF", "SRG", "AOPC MoRF", "AOPC LeRF"])
        lines = [["semiring/rule"] + cols]
        for name, row in self.table.items():
            lines.append([name] + [f"{row[c]:+.3f}" if c.startswith("Δ") else f"{row[c]:.3f}"
                                   for c in cols])
        widths = [max(len(line[i]) for line in lines) for i in range(len(cols) + 1)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines)
