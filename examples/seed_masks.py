"""Seed reproductions on the bundled models: class-wise masks and faithfulness.

``masks_section`` computes the class-wise masks of seed 000 ("Image mask computation") on the
4,000 bundled training digits and evaluates them on the 1,000 held-out ones;
``faithfulness_section`` runs seed 004's feature-removal test and input pruning, pixel flipping
and region perturbation per semiring and rule, on the bundled MLP and on any other classifier
given (a CNN). Both write PNGs into ``docs/figures/`` and print their tables with wall times.

Run: ``python examples/seed_masks.py [--cnn path/to/cnn.onnx] [--samples 500]``; the bundled
CNN (``provgraph/data/mnist_cnn.onnx``), where there is one, is evaluated too.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from provgraph.apps import bundled_mnist
from provgraph.apps.demo import bundled_model_path
from provgraph.apps.evaluation_report import run_evaluation, save_evaluation_figure
from provgraph.apps.faithfulness import Settings
from provgraph.apps.mask_report import run_masks, save_masks_grid
from provgraph.apps.model_job import ModelRef

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ROOT / "docs" / "figures"


def portable(value: Any) -> Any:
    """``value`` with file paths made machine-independent (relative to the repository, or to
    ``site-packages`` for installed packages), for figures that are committed."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, str):
        value = value.replace(f"{ROOT}/", "")
        return re.sub(r"\S*site-packages/", "", value)
    return value


def masks_section(figures: Path = FIGURES, model: Path | None = None) -> None:
    """Class masks fitted on the training split, evaluated on the held-out split."""
    ref = ModelRef(model or bundled_model_path())
    start = time.perf_counter()
    report = run_masks(ref, bundled_mnist("train"), evaluation=bundled_mnist("test"),
                       thresholds=(0.5, 0.75, 0.9), chunk_size=500, progress=False)
    seconds = time.perf_counter() - start
    name = "masks" if model is None else f"masks_{Path(model).stem}"
    report.metadata = portable(report.metadata)
    save_masks_grid(report, figures / f"{name}.png", mask="boolean f≥0.75")
    print(f"## class masks ({Path(ref.model).name}: fitted on {report.metadata['dataset']['used']}"
          f" training digits, evaluated on {report.metadata['evaluation_dataset']['used']} "
          f"held-out digits, {seconds:.0f} s)")
    print(report.table())


def faithfulness_section(figures: Path = FIGURES, model: Path | None = None,
                         samples: int = 500) -> None:
    """Faithfulness per semiring and rule (zero baseline), and SRG under the mean and blur
    baselines on fewer samples."""
    ref = ModelRef(model or bundled_model_path())
    test = bundled_mnist("test")
    tag = "" if model is None else f"_{Path(model).stem}"
    start = time.perf_counter()
    report = run_evaluation(ref, test, settings=Settings(), samples=samples, rank_samples=500,
                            progress=False)
    seconds = time.perf_counter() - start
    report.metadata = portable(report.metadata)
    save_evaluation_figure(report, figures / f"faithfulness{tag}.png")
    print(f"## faithfulness ({Path(ref.model).name}, baseline zero, {seconds:.0f} s)")
    print(report.tables())
    for baseline in ("mean", "blur"):
        start = time.perf_counter()
        other = run_evaluation(ref, test, settings=Settings(perturb_baseline=baseline),
                               samples=min(samples, 200), rank_samples=500, progress=False)
        seconds = time.perf_counter() - start
        print(f"## baseline {baseline} ({other.metadata['test_samples']} samples, "
              f"{seconds:.0f} s)")
        print(other.faithfulness.format(["acc −least", "acc −most", "Δconf −least",
                                         "Δconf −most", "SRG", "region SRG"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bundled_cnn = bundled_model_path().with_name("mnist_cnn.onnx")
    parser.add_argument("--cnn", type=Path, default=bundled_cnn if bundled_cnn.is_file() else None,
                        help="also evaluate this classifier (default: the bundled CNN, if any)")
    parser.add_argument("--samples", type=int, default=500, help="faithfulness test samples")
    parser.add_argument("--figures", type=Path, default=FIGURES)
    args = parser.parse_args()
    masks_section(args.figures)
    faithfulness_section(args.figures, samples=args.samples)
    if args.cnn is not None:
        masks_section(args.figures, args.cnn)
        faithfulness_section(args.figures, args.cnn, args.samples)


if __name__ == "__main__":
    main()
