"""Explanations on a CUDA device: ms per image for every built-in semiring.

Workloads: VGG-16 (random weights, seed 0; ``tests/models.py``) on one 1×3×224×224 input, and
the bundled MNIST MLP (``provgraph/data/mnist_mlp.onnx``) on one digit; the predicted class,
each semiring with its default rule and Θ, through the one-call API as a user writes it:

- ``pg.explain(net, x, semiring=S, backend="torch", device="cuda")``: the torch backend's
  structured kernels (they never materialise an edge);
- ``pg.explain(net, x, semiring=S, backend="triton")``: the Triton contraction kernels over the
  annotated graph's materialised edges (networks within the backend's edge budget only; VGG-16's
  15.5 G edges are over it, and the row says so).

``net`` is imported beforehand (the import is not timed). Each case runs once as warm-up
(Triton compiles its kernels then), then ``--runs`` times with ``torch.cuda.synchronize()``
around it; the median is printed. Target: VGG-16 ≤ 50 ms per image under every semiring on an
H200-class GPU.

Run: ``.venv/bin/python benchmarks/bench_gpu.py [--runs 5] [--only vgg16|mnist]
[--backends torch,triton]`` on a machine with CUDA (it refuses to run without one).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import models  # noqa: E402

import provgraph as pg  # noqa: E402
from provgraph.algebra.semirings import BUILTIN_SEMIRINGS  # noqa: E402
from provgraph.errors import ProvgraphError  # noqa: E402

CALLS = {
    "torch": {"backend": "torch", "device": "cuda"},
    "triton": {"backend": "triton"},
}


def workloads(only: str | None, folder: Path) -> dict[str, tuple[pg.Network, np.ndarray]]:
    out = {}
    if only in (None, "vgg16"):
        torch.manual_seed(0)
        path = models.export_onnx(models.vgg16(), folder / "vgg16.onnx")
        x = np.random.default_rng(0).uniform(0, 1, (1, 3, 224, 224)).astype(np.float32)
        out["vgg16"] = (pg.load(path), x)
    if only in (None, "mnist"):
        data = ROOT / "provgraph" / "data"
        digits = np.load(data / "mnist_samples.npz")
        x = np.asarray(digits[digits.files[0]][:1], dtype=np.float32)
        out["mnist"] = (pg.load(data / "mnist_mlp.onnx"), x)
    return out


def time_call(net: pg.Network, x: np.ndarray, semiring: str, call: dict, runs: int) -> float:
    """Median wall time in ms of one explanation (after one warm-up call)."""
    pg.explain(net, x, semiring=semiring, **call)
    times = []
    for _ in range(runs):
        torch.cuda.synchronize()
        start = time.perf_counter()
        pg.explain(net, x, semiring=semiring, **call)
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=("vgg16", "mnist"), default=None)
    parser.add_argument("--backends", default="torch,triton")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench_gpu.py: CUDA is not available (this benchmark needs a GPU)")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    print(f"GPU: {torch.cuda.get_device_name()}; ms per image, median of {args.runs}\n")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (net, x) in workloads(args.only, Path(tmp)).items():
            print(f"{name}\n\n| semiring | " + " | ".join(backends) + " | target |")
            print("|---|" + "---:|" * len(backends) + "---:|")
            for semiring in BUILTIN_SEMIRINGS:
                cells = []
                for b in backends:
                    try:
                        cells.append(f"{time_call(net, x, semiring, CALLS[b], args.runs):.1f}")
                    except ProvgraphError as exc:
                        cells.append(f"refused: {str(exc).split(';')[0][-60:]}")
                target = "≤ 50" if name == "vgg16" else ""
                print(f"| {semiring} | " + " | ".join(cells) + f" | {target} |")
            print()


if __name__ == "__main__":
    main()
