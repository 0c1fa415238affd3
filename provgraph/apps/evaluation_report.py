"""The evaluation job end to end: faithfulness table, input-pruning curves, figures and files.

:func:`run_evaluation` splits the dataset's first ``rank_samples + samples`` samples: input
pruning ranks inputs on the first ``rank_samples`` and measures on the others, where the
faithfulness tests run too (so no sample is both ranked on and tested). Outputs record the
model's sha256, every case's semiring, rule and Θ, the settings, the dataset and its
preprocessing, and how ties were broken.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from provgraph.apps.datasets import Dataset
from provgraph.apps.faithfulness import DEFAULT_CASES, Faithfulness, FaithfulnessResult, Settings
from provgraph.apps.input_pruning import (
    DEFAULT_FRACTIONS,
    InputPruning,
    MeanInputRelevance,
    format_pruning,
)
from provgraph.apps.job_steps import JobSteps
from provgraph.apps.model_job import Case, ModelRef
from provgraph.errors import InputError


@dataclass
class EvaluationReport:
    """The faithfulness result, the input-pruning curves and the metadata of one run."""

    faithfulness: FaithfulnessResult
    pruning: dict[str, dict[float, dict[str, float]]]
    metadata: dict[str, Any]

    def tables(self) -> str:
        """Both tables as text."""
        return (f"faithfulness ({self.metadata['test_samples']} samples):\n"
                f"{self.faithfulness.format()}\n\ninput pruning (ranked on "
                f"{self.metadata['rank_samples']} samples, accuracy):\n"
                f"{format_pruning(self.pruning)}")


def run_evaluation(model: ModelRef, dataset: Dataset, cases: Sequence[Case] = DEFAULT_CASES,
                   settings: Settings | None = None, samples: int | None = None,
                   rank_samples: int | None = None,
                   fractions: Sequence[float] = DEFAULT_FRACTIONS, chunk_size: int = 100,
                   progress: bool = True, cluster: Any = None,
                   resume: str | Path | None = None, strict: bool = False) -> EvaluationReport:
    """Faithfulness and input pruning of every case on ``dataset``.

    Without ``rank_samples``, half of the samples used rank; without ``samples``, every sample
    not used for ranking is tested. The three reductions run through
    :func:`~provgraph.apps.distributed.run_job`: in-process (``cluster=None``), on
    ``"local:N"`` workers, a ``"tcp://HOST:PORT"`` scheduler or a ``distributed.Client``, with
    the same result; ``resume`` and ``strict`` as there.
    """
    settings = settings or Settings()
    n = len(dataset)
    rank = n // 2 if rank_samples is None else int(rank_samples)
    test = n - rank if samples is None else int(samples)
    if rank < 1 or test < 1 or rank + test > n:
        raise InputError(f"{dataset.source}: {rank} ranking and {test} test samples do not fit "
                         f"in its {n} samples")
    with JobSteps(cluster, resume, strict, progress) as steps:
        orders = steps.run("ranking", dataset,
                           MeanInputRelevance(model, cases, settings.targets), chunk_size, 0,
                           rank)
        faithfulness = steps.run("faithfulness", dataset, Faithfulness(model, cases, settings),
                                 chunk_size, rank, rank + test)
        pruning = steps.run("input-pruning", dataset,
                            InputPruning(model, orders, fractions, settings.perturb_baseline,
                                         settings.seed), chunk_size, rank, rank + test)
    metadata = {**faithfulness.record, "dataset": dataset.as_dict(),
                "rank_samples": rank, "test_samples": test,
                "rank_range": [0, rank], "test_range": [rank, rank + test],
                "fractions_kept": [float(f) for f in fractions],
                "bad_samples": [str(b) for b in steps.bad_samples]}
    return EvaluationReport(faithfulness, pruning, metadata)


def save_evaluation_figure(report: EvaluationReport, path: str | Path) -> None:
    """Mean pixel-flipping curves (MoRF solid, LeRF dashed) per case, and input-pruning accuracy
    against the fraction of inputs kept."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from provgraph.io.heatmaps import save_figure

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, curves) in enumerate(report.faithfulness.curves.items()):
        colour = colours[i % len(colours)]
        for ax, kind in ((axes[0], "flip"), (axes[1], "region")):
            for order, style in (("morf", "-"), ("lerf", "--")):
                y = curves[f"{kind} {order}"]
                ax.plot(np.linspace(0, 1, len(y)), y, style, color=colour,
                        label=f"{name} {order.upper()}" if kind == "flip" else None)
    s = report.metadata["settings"]
    axes[0].set_title(f"pixel flipping ({s['features_in_step']} inputs per step)")
    axes[1].set_title(f"region perturbation ({s['patch_size']}×{s['patch_size']} patches)")
    for ax in axes[:2]:
        ax.set_xlabel("fraction perturbed")
        ax.set_ylabel("probability of the explained class")
    axes[0].legend(fontsize=7)
    for i, (name, row) in enumerate(report.pruning.items()):
        fractions = sorted(row)
        axes[2].plot(fractions, [row[f]["accuracy"] for f in fractions], "o-",
                     color=colours[i % len(colours)], label=name)
    axes[2].set_title(f"input pruning (ranked on {report.metadata['rank_samples']} samples)")
    axes[2].set_xlabel("fraction of inputs kept")
    axes[2].set_ylabel("accuracy")
    axes[2].legend(fontsize=7)
    fig.suptitle(f"baseline {s['perturb_baseline']}, model sha256 "
                 f"{report.metadata['model_sha256'][:12]}…", fontsize=10)
    save_figure(fig, path, report.metadata)


def write_evaluation_outputs(report: EvaluationReport, out: str | Path) -> list[Path]:
    """``evaluate.json`` (tables and metadata), ``evaluate.npz`` (mean curves) and
    ``evaluate.png`` in ``out``, each written atomically."""
    from provgraph.io.atomic import atomic_save_npz, atomic_write

    out = Path(out)
    paths = [out / "evaluate.json", out / "evaluate.npz", out / "evaluate.png"]
    document = {"metadata": report.metadata, "faithfulness": report.faithfulness.table,
                "input_pruning": {k: {str(f): v for f, v in row.items()}
                                  for k, row in report.pruning.items()}}
    text = json.dumps(document, indent=2, default=float)
    atomic_write(paths[0], lambda fh: fh.write(text.encode()))
    arrays = {f"{name}|{kind}": curve for name, curves in report.faithfulness.curves.items()
              for kind, curve in curves.items()}
    arrays["metadata"] = np.asarray(json.dumps(report.metadata, default=float))
    atomic_save_npz(paths[1], arrays)
    save_evaluation_figure(report, paths[2])
    return paths
