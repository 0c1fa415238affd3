"""How well a set of class masks captures what the classifier uses.

For each sample x with original prediction p and each mask set M (one mask per class):

- **keep**: ``x'_j = x_j`` for ``j ∈ M_p``, the baseline elsewhere; re-classify;
- **remove**: ``x'_j = baseline`` for ``j ∈ M_p``, ``x_j`` elsewhere; re-classify;

and the same with a random mask of the same size per class (seeded, fixed before any sample is
read, so every chunking draws the same masks). Reported: accuracy against the labels, agreement
with the original prediction, and the mean softmax confidence in the original prediction.
:class:`MaskEvaluation` is a :class:`~provgraph.apps.streaming.Reduction`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from provgraph.apps.datasets import Chunk
from provgraph.apps.masks import MaskSet
from provgraph.apps.model_job import ModelRef, dataset_targets, softmax
from provgraph.errors import InputError

MODES = ("keep", "remove")
KINDS = ("mask", "random")


def random_masks(masks: np.ndarray, seed: int, salt: int) -> np.ndarray:
    """Per class a uniformly random mask with as many pixels as ``masks[c]``
    (``numpy.random.default_rng([seed, salt, c])``)."""
    out = np.zeros_like(masks, dtype=bool)
    for c, row in enumerate(masks):
        rng = np.random.default_rng([seed, salt, c])
        out[c, rng.permutation(row.size)[: int(row.sum())]] = True
    return out


def apply_mask(x: np.ndarray, mask: np.ndarray, mode: str, baseline: float) -> np.ndarray:
    """``x`` (B, inputs) with ``mask`` (B, inputs) kept (the rest set to ``baseline``) or
    removed (set to ``baseline``)."""
    if mode == "keep":
        return np.where(mask, x, baseline)
    if mode == "remove":
        return np.where(mask, baseline, x)
    raise InputError(f"mask mode must be 'keep' or 'remove', got {mode!r}")


@dataclass(frozen=True)
class EvaluationPartial:
    """Sums over samples: ``n``, ``labelled``, and per (set, mode, kind) or ``"original"`` the
    numbers correct, agreeing with the original prediction, and the confidence sum."""

    n: int
    labelled: int
    correct: dict[Any, int]
    agree: dict[Any, int]
    confidence: dict[Any, float]


class MaskEvaluation:
    """Keep and remove each mask set's pixels of the predicted class, against random masks.

    Parameters
    ----------
    model : ModelRef
        The classifier.
    sets : sequence of MaskSet
        The masks to evaluate, each (classes, inputs).
    baseline : float
        The value removed pixels take (0: black for the bundled digits).
    seed : int
        Seed of the random masks.
    """

    def __init__(self, model: ModelRef, sets: Sequence[MaskSet], baseline: float = 0.0,
                 seed: int = 0) -> None:
        self.model, self.baseline, self.seed = model, float(baseline), int(seed)
        self.sets = tuple(sets)
        self.random = {s.name: random_masks(s.masks, self.seed, i) for i, s in
                       enumerate(self.sets)}

    def keys(self) -> list[Any]:
        """``"original"`` and every ``(set name, mode, kind)``."""
        return ["original"] + [(s.name, m, k) for s in self.sets for m in MODES for k in KINDS]

    def map(self, chunk: Chunk) -> EvaluationPartial:
        """Re-classify the chunk under every mask; sums of correct, agreeing and confidence."""
        x = self.model.batch(chunk.x)
        flat = x.reshape(len(x), -1)
        logits = self.model.logits(x)
        pred = dataset_targets(chunk, logits, "predicted")  # also checks the labels
        rows = np.arange(len(x))
        labels = chunk.labels
        correct, agree, confidence = {}, {}, {}

        def score(key: Any, z: np.ndarray) -> None:
            p = softmax(z)
            new = np.argmax(p, axis=1)
            correct[key] = int(np.sum(new == labels)) if labels is not None else 0
            agree[key] = int(np.sum(new == pred))
            confidence[key] = float(np.sum(p[rows, pred]))

        score("original", logits)
        for s in self.sets:
            for kind, masks in (("mask", s.masks), ("random", self.random[s.name])):
                chosen = masks[pred]
                for mode in MODES:
                    xm = apply_mask(flat, chosen, mode, self.baseline).reshape(x.shape)
                    score((s.name, mode, kind), self.model.logits(xm))
        return EvaluationPartial(len(x), len(x) if labels is not None else 0, correct, agree,
                                 confidence)

    def combine(self, a: EvaluationPartial, b: EvaluationPartial) -> EvaluationPartial:
        """Sums of both partials."""
        return EvaluationPartial(a.n + b.n, a.labelled + b.labelled,
                                 {k: a.correct[k] + b.correct[k] for k in a.correct},
                                 {k: a.agree[k] + b.agree[k] for k in a.agree},
                                 {k: a.confidence[k] + b.confidence[k] for k in a.confidence})

    def finish(self, p: EvaluationPartial) -> list[dict[str, Any]]:
        """One row per mask set: size, and accuracy / agreement / confidence per mode and kind
        (accuracy ``nan`` without labels)."""

        def cells(key: Any) -> dict[str, float]:
            acc = p.correct[key] / p.labelled if p.labelled else float("nan")
            return {"accuracy": acc, "agreement": p.agree[key] / p.n,
                    "confidence": p.confidence[key] / p.n}

        inputs = float(self.sets[0].masks.shape[1]) if self.sets else float("nan")
        rows = [{"set": "original", "mean size": inputs, "original": cells("original"),
                 "samples": p.n}]
        for s in self.sets:
            row: dict[str, Any] = {"set": s.name, "mean size": float(np.mean(s.sizes)),
                                   "how": s.how, "samples": p.n}
            for mode in MODES:
                for kind in KINDS:
                    row[f"{mode} {kind}"] = cells((s.name, mode, kind))
            rows.append(row)
        return rows


def format_evaluation(rows: list[dict[str, Any]]) -> str:
    """A text table: per mask set, accuracy and confidence when kept and removed, with the
    random masks of the same size."""
    head = ["mask", "size", "keep acc", "(random)", "keep conf", "(random)", "remove acc",
            "(random)", "remove conf", "(random)"]
    lines = [head]
    for row in rows:
        if row["set"] == "original":
            o = row["original"]
            lines.append(["original", f"{row['mean size']:.0f}", f"{o['accuracy']:.3f}", "",
                          f"{o['confidence']:.3f}", "", "", "", "", ""])
            continue
        cells = [row["set"], f"{row['mean size']:.0f}"]
        for mode in MODES:
            for metric in ("accuracy", "confidence"):
                cells += [f"{row[f'{mode} mask'][metric]:.3f}",
                          f"({row[f'{mode} random'][metric]:.3f})"]
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines)
