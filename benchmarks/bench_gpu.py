"""Explanations on a CUDA device: ms per image for every built-in semiring.

Workloads: VGG-16 (random weights, seed 0; ``tests/models.py``) on one 1×3×224×224 input, and
the bundled MNIST MLP (``provgraph/data/mnist_mlp.onnx``) on one digit; the predicted class,
each semiring with its default rule and Θ, through the one-call API as a user writes it:

- ``pg.explain(net, x, semiring=S, backend="torch", device="cuda")``: the torch backend's
  structured kernels (they never materialise an edge);
- ``pg.explain(net, x, semiring=S, backend="triton")``: the Triton backend, whose dense,
  convolution and average-pooling steps are fused gather kernels (``backends/triton_window.py``)
  that never materialise an edge either. A backend that explains one sample at a time gets the
  float64 forward trace computed on the host, so this time includes a CPU forward pass;
- ``graph.aggregate(S, backend=engine)`` on ``graph = pg.annotate(net, x)``, built once and
  reused for every semiring (not timed): the propagation alone, on the Triton backend (column
  ``triton-reused``).

``net`` is imported beforehand (the import is not timed). Each case runs once as warm-up
(Triton compiles its kernels then), then ``--runs`` times with ``torch.cuda.synchronize()``
around it; the median is printed, with the kernel variants the Triton backend ran and the
counting carrier (counts past 2⁵³ are rerun in float64, and the time includes both passes). Target:
VGG-16 ≤ 50 ms per image under every semiring on an H200-class GPU.

Run: ``.venv/bin/python benchmarks/bench_gpu.py [--runs 5] [--only vgg16|mnist]
[--backends torch,triton,triton-reused]`` on a machine with CUDA (it refuses to run without one).

``--quick`` runs the same code paths on a VGG-16 with every width divided by 32 on 32×32 inputs
(and the MNIST MLP), one run each: with ``TRITON_INTERPRET=1`` and no GPU the Triton kernels run
in Triton's interpreter and the torch backend on the CPU, which checks the script, not the
speed (``TRITON_INTERPRET=1 .venv/bin/python benchmarks/bench_gpu.py --quick``).
"""

from __future__ import annotations

import argparse
import os
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
from provgraph.backends import get_backend  # noqa: E402
from provgraph.errors import ProvgraphError  # noqa: E402


def calls(device: str) -> dict[str, dict]:
    """The keyword arguments of each backend's one-call explanation (``annotated``: the Triton
    backend on an annotated graph built beforehand)."""
    return {
        "torch": {"backend": "torch", "device": device},
        "triton": {"backend": "triton"},
        "triton-reused": {"backend": "triton", "annotated": True},
    }


def workloads(only: str | None, folder: Path, quick: bool
              ) -> dict[str, tuple[pg.Network, np.ndarray]]:
    out = {}
    if only in (None, "vgg16"):
        torch.manual_seed(0)
        side = 32 if quick else 224
        model = models.vgg16(width=32, classes=10, side=side) if quick else models.vgg16()
        path = models.export_onnx(model, folder / "vgg16.onnx")
        x = np.random.default_rng(0).uniform(0, 1, (1, 3, side, side)).astype(np.float32)
        out["vgg16 (widths / 32, 32×32)" if quick else "vgg16"] = (pg.load(path), x)
    if only in (None, "mnist"):
        data = ROOT / "provgraph" / "data"
        digits = np.load(data / "mnist_samples.npz")
        x = np.asarray(digits[digits.files[0]][:1], dtype=np.float32)
        out["mnist"] = (pg.load(data / "mnist_mlp.onnx"), x)
    return out


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_call(net: pg.Network, x: np.ndarray, semiring: str, call: dict, runs: int
              ) -> tuple[float, str]:
    """Median wall time in ms of one explanation (after one warm-up call), and for the Triton
    backend the kernel variants its fused steps ran."""
    call = dict(call)
    if call["backend"] == "triton":  # one instance, so that its step counts can be read
        call["backend"] = get_backend("triton")
    if call.pop("annotated", False):
        graph = pg.annotate(net, x)
        target = int(np.argmax(graph.logits))

        def run() -> pg.Relevance:
            return graph.aggregate(semiring, target=target, **call)
    else:
        def run() -> pg.Relevance:
            return pg.explain(net, x, semiring=semiring, **call)
    result = run()
    times = []
    for _ in range(runs):
        _synchronize()
        start = time.perf_counter()
        run()
        _synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    engine = call["backend"]
    notes = [] if isinstance(engine, str) else [
        f"{k} {v // (runs + 1)}" for k, v in sorted(engine.fused_steps.items())]
    if "counting" in result.info:  # counts past 2**53 are rerun in a wider carrier
        notes.append(f"counting {result.info['counting']}")
    return statistics.median(times), ", ".join(notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", choices=("vgg16", "mnist"), default=None)
    parser.add_argument("--backends", default="torch,triton,triton-reused",
                        help="comma-separated columns: torch, triton, triton-reused (the "
                        "Triton backend on an annotated graph built beforehand)")
    parser.add_argument("--quick", action="store_true",
                        help="a VGG-16 of widths / 32 on 32×32, one run: checks the code paths")
    args = parser.parse_args()
    interpreted = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
    if not torch.cuda.is_available() and not (args.quick and interpreted):
        sys.exit("bench_gpu.py: CUDA is not available (this benchmark needs a GPU; "
                 "TRITON_INTERPRET=1 ... --quick runs its code paths on the CPU)")
    runs = 1 if args.quick else args.runs
    device = "cuda" if torch.cuda.is_available() else "cpu"
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(calls(device)))
    if unknown:
        sys.exit(f"bench_gpu.py: unknown --backends {', '.join(unknown)}; "
                 f"use {', '.join(calls(device))}")
    where = torch.cuda.get_device_name() if device == "cuda" else "CPU, Triton's interpreter"
    print(f"{where}; ms per image, median of {runs}\n")
    with tempfile.TemporaryDirectory() as tmp:
        for name, (net, x) in workloads(args.only, Path(tmp), args.quick).items():
            print(f"{name}\n\n| semiring | " + " | ".join(backends)
                  + " | triton kernels | target |")
            print("|---|" + "---:|" * len(backends) + "---|---:|")
            for semiring in BUILTIN_SEMIRINGS:
                cells, variants = [], ""
                for b in backends:
                    try:
                        ms, used = time_call(net, x, semiring, calls(device)[b], runs)
                        cells.append(f"{ms:.1f}")
                        variants = used or variants
                    except ProvgraphError as exc:
                        cells.append(f"refused: {str(exc).split(';')[0][-60:]}")
                target = "≤ 50" if name == "vgg16" else ""
                print(f"| {semiring} | " + " | ".join(cells) + f" | {variants} | {target} |")
            print()


if __name__ == "__main__":
    main()
