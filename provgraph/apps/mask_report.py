"""The class-mask job end to end: statistics, masks, their evaluation, the PNG grid and ``.npz``.

:func:`run_masks` is what ``provgraph masks`` and ``examples/seed_masks.py`` call. Every output
records the model's sha256, each case's semiring, rule and Θ, the targets, the dataset and its
preprocessing; files are written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from provgraph.apps.datasets import Dataset
from provgraph.apps.job_steps import JobSteps
from provgraph.apps.mask_evaluation import MaskEvaluation, format_evaluation
from provgraph.apps.masks import (
    DEFAULT_CASES,
    DEFAULT_THRESHOLDS,
    ClassRelevance,
    ClassRelevanceSummary,
    MaskSet,
    all_masks,
    check_thresholds,
    summary_arrays,
)
from provgraph.apps.model_job import Case, ModelRef


@dataclass
class MaskReport:
    """Everything the mask job produced."""

    relevance: ClassRelevanceSummary
    sets: list[MaskSet]
    evaluation: list[dict[str, Any]]
    metadata: dict[str, Any]

    def table(self) -> str:
        """The evaluation as a text table."""
        return format_evaluation(self.evaluation)


def run_masks(model: ModelRef, dataset: Dataset, cases: Sequence[Case] = DEFAULT_CASES,
              thresholds: Sequence[float] = DEFAULT_THRESHOLDS, targets: str = "label",
              evaluation: Dataset | None = None, baseline: float = 0.0, seed: int = 0,
              chunk_size: int = 250, limit: int | None = None, progress: bool = True,
              cluster: Any = None, resume: str | Path | None = None,
              strict: bool = False) -> MaskReport:
    """Class statistics over ``dataset`` (its first ``limit`` samples), masks, and their
    evaluation on ``evaluation`` (default: the same samples).

    Both reductions run through :func:`~provgraph.apps.distributed.run_job`: in-process
    (``cluster=None``), on ``"local:N"`` workers, a ``"tcp://HOST:PORT"`` scheduler or a
    ``distributed.Client``, with the same result; ``resume`` and ``strict`` as there."""
    check_thresholds(thresholds)
    n_classes = int(model.network.num_classes)
    stop = None if limit is None else min(int(limit), len(dataset))
    job = ClassRelevance(model, cases, n_classes, targets)
    data = evaluation if evaluation is not None else dataset
    eval_stop = None if limit is None else min(int(limit), len(data))
    with JobSteps(cluster, resume, strict, progress) as steps:
        relevance = steps.run("relevance", dataset, job, chunk_size, stop=stop)
        sets = all_masks(relevance, thresholds)
        rows = steps.run("evaluation", data, MaskEvaluation(model, sets, baseline, seed),
                         chunk_size, stop=eval_stop)
    metadata = {**relevance.record(), "thresholds": [float(t) for t in thresholds],
                "baseline": baseline, "seed": seed,
                "dataset": {**dataset.as_dict(), "used": stop or len(dataset)},
                "evaluation_dataset": {**data.as_dict(), "used": eval_stop or len(data)},
                "bad_samples": [str(b) for b in steps.bad_samples],
                "ranking": "Counting and real masks rank pixels by their summed relevance; ties "
                           "by the real mean relevance, then by position"}
    return MaskReport(relevance, sets, rows, metadata)


def save_masks_npz(report: MaskReport, path: str | Path) -> None:
    """Frequencies, sums, means, counts, every mask set and the evaluation in one ``.npz``,
    with the metadata as JSON (member ``metadata``)."""
    from provgraph.io.atomic import atomic_save_npz

    arrays = summary_arrays(report.relevance)
    arrays["mask_names"] = np.asarray([s.name for s in report.sets])
    arrays["masks"] = np.stack([s.masks for s in report.sets])
    arrays["evaluation"] = np.asarray(json.dumps(report.evaluation))
    arrays["metadata"] = np.asarray(json.dumps(report.metadata))
    atomic_save_npz(path, arrays)


def save_masks_grid(report: MaskReport, path: str | Path,
                    layout: tuple[int, int, int] | None = None, mask: str | None = None) -> None:
    """A PNG grid, one column per class: the Boolean frequency, the mean Counting and real
    relevance, and one Boolean mask (``mask``: its name; default the first); every panel with
    its colour bar. ``layout`` is one sample's (channels, height, width); channels are summed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from provgraph.algebra.semirings import get_semiring
    from provgraph.io.heatmaps import save_figure

    rows: list[tuple[str, np.ndarray, dict[str, Any], str]] = []
    for case, summary in report.relevance.summaries.items():
        k = get_semiring(case.semiring)
        if case.semiring == "boolean":
            rows.append((f"Boolean frequency\n({case.label})", summary.frequencies,
                         {"cmap": k.colormap, "vmin": 0.0, "vmax": 1.0}, "frequency"))
            continue
        values, label = k.display(summary.means)
        style: dict[str, Any] = {"cmap": k.colormap}
        rows.append((f"mean {case.semiring}\n({case.label})", values, style, label))
    chosen = next((s for s in report.sets if s.name == mask), report.sets[0])
    rows.append((chosen.name, chosen.masks.astype(np.float64),
                 {"cmap": "gray", "vmin": 0.0, "vmax": 1.0}, "in mask"))
    n_classes = len(report.relevance.counts)
    if layout is None:
        layout = _layout(rows[0][1].shape[1])
    fig, axes = plt.subplots(len(rows), n_classes, figsize=(2.1 * n_classes, 2.0 * len(rows)),
                             squeeze=False)
    for i, (title, values, style, label) in enumerate(rows):
        signed = style.get("cmap") == get_semiring("real").colormap
        for c in range(n_classes):
            ax = axes[i, c]
            img = np.asarray(values[c], dtype=np.float64).reshape(layout).sum(axis=0)
            extra = dict(style)
            if signed and "vmin" not in extra:
                lim = float(np.max(np.abs(img))) or 1.0
                extra.update(vmin=-lim, vmax=lim)
            im = ax.imshow(img, interpolation="nearest", **extra)
            ax.set_xticks([])
            ax.set_yticks([])
            last = c == n_classes - 1
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label if last else None)
            if i == 0:
                ax.set_title(f"class {c} (n={int(report.relevance.counts[c])})", fontsize=9)
            if c == 0:
                ax.set_ylabel(title, fontsize=8)
    fig.suptitle(f"class-wise relevance, model sha256 {report.metadata['model_sha256'][:12]}…, "
                 f"targets: {report.metadata['targets']}", fontsize=10)
    save_figure(fig, path, report.metadata)


def _layout(size: int) -> tuple[int, int, int]:
    side = int(round(size**0.5))
    return (1, side, side) if side * side == size else (1, 1, size)


def write_mask_outputs(report: MaskReport, out: str | Path,
                       layout: tuple[int, int, int] | None = None) -> list[Path]:
    """``masks.png``, ``masks.npz`` and ``masks.json`` (metadata and evaluation) in ``out``."""
    from provgraph.io.atomic import atomic_write

    out = Path(out)
    paths = [out / "masks.png", out / "masks.npz", out / "masks.json"]
    save_masks_grid(report, paths[0], layout)
    save_masks_npz(report, paths[1])
    text = json.dumps({"metadata": report.metadata, "evaluation": report.evaluation},
                      indent=2, default=float)
    atomic_write(paths[2], lambda fh: fh.write(text.encode()))
    return paths
