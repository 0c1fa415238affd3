"""The public one-call API against Captum, the batched kernel path and a torch forward pass.

Workload: VGG-16 (random weights, seed 0; ``tests/models.py``) on one 1×3×224×224 input, its
predicted class, the real semiring with LRP-ε. Every case runs in this one process, in rounds:
each round calls every case once, in an order that rotates from round to round, and a ratio is
taken within each round, so load from other processes (which drifts slowly) affects both sides
of a ratio alike; the table gives the median over rounds after one warm-up round.

Cases, timed exactly as a user writes them:

- ``pg.explain(net, x, target, semiring="real", rule="epsilon", backend="torch")`` (``net`` is
  the loaded network; the ONNX import is not timed);
- ``explainer(x, target=target)`` with ``explainer = pg.Explainer(net, "real", rule="epsilon",
  backend="torch")`` built once;
- the batched kernel path: ``BatchGraph.from_inputs(net, x, "cpu", float32)`` then
  ``.aggregate("real", backend=TorchBackend(dtype="float32"), rule="epsilon", target=target)``;
- the forward trace alone (``BatchGraph.from_inputs`` in float32), against one float32 forward
  pass of the torch module;
- Captum's ``LRP(model).attribute(x, target=target)`` (ε = 1e-9 rules, float32).

Targets: one call ≤ 0.7× Captum; one call ≤ 1.1× the batched path; trace ≤ 1× torch forward
plus what the rule needs (the trace keeps every max pooling's arg-max for the winner-takes-all
step; the rules' own work is in the backward pass). ``--quick`` runs a width-reduced VGG-16
(channels ÷ 8, 64×64 input) in seconds; its ratios are dominated by per-op overheads.

On a shared machine the spread of a ratio over rounds is printed with it; trust the median.

Run: ``.venv/bin/python benchmarks/bench_explain.py [--rounds 7] [--threads 2] [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import models

import provgraph as pg
from provgraph.backends import TorchBackend
from provgraph.engine.batch import BatchGraph

ONE_CALL = "pg.explain (one call)"
EXPLAINER = "Explainer, configured once"
BATCHED = "batched kernel path"
TRACE = "forward trace (float32)"
FORWARD = "torch forward (float32)"
CAPTUM = "Captum LRP"

#: (case, reference, target ratio or None): the rows of the table
RATIOS = [
    (ONE_CALL, CAPTUM, 0.7),
    (ONE_CALL, BATCHED, 1.1),
    (EXPLAINER, CAPTUM, 0.7),
    (EXPLAINER, BATCHED, 1.1),
    (BATCHED, CAPTUM, None),
    (TRACE, FORWARD, 1.0),
]


def workload(quick: bool) -> tuple[torch.nn.Module, pg.Network, np.ndarray, int]:
    """The torch module, the provgraph network imported from its ONNX export, an input, and
    the module's predicted class for it."""
    torch.manual_seed(0)
    model = models.vgg16(width=8, side=64) if quick else models.vgg16()
    for p in model.parameters():
        p.requires_grad_(False)
    side = model.input_shape[-1]
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, side, side)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = models.export_onnx(model, Path(tmp) / "vgg16.onnx")
        net = pg.load(path.read_bytes())
    with torch.no_grad():
        target = int(model(torch.as_tensor(x)).argmax())
    return model, net, x, target


def cases(model: torch.nn.Module, net: pg.Network, x: np.ndarray, target: int) -> dict[
    str, Callable[[], Any]
]:
    """Each case as a no-argument call."""
    from captum.attr import LRP

    xt = torch.as_tensor(x)
    lrp = LRP(model)
    engine = TorchBackend(dtype="float32")
    explainer = pg.Explainer(net, "real", rule="epsilon", backend="torch")

    def batched() -> Any:
        graph = BatchGraph.from_inputs(net, x, engine.device, engine.dtype)
        return graph.aggregate("real", backend=engine, rule="epsilon", target=target)

    def forward() -> Any:
        with torch.no_grad():
            return model(xt)

    return {
        ONE_CALL: lambda: pg.explain(
            net, x, target, semiring="real", rule="epsilon", backend="torch"
        ),
        EXPLAINER: lambda: explainer(x, target=target),
        BATCHED: batched,
        TRACE: lambda: BatchGraph.from_inputs(net, x, engine.device, engine.dtype),
        FORWARD: forward,
        CAPTUM: lambda: lrp.attribute(xt.clone().requires_grad_(), target=target),
    }


def measure(calls: dict[str, Callable[[], Any]], rounds: int) -> list[dict[str, float]]:
    """Wall times of every case in ``rounds`` rounds (after one warm-up round), each round in a
    rotated order."""
    names = list(calls)
    out = []
    for r in range(rounds + 1):
        order = names[r % len(names):] + names[: r % len(names)]
        times = {}
        for name in order:
            start = time.perf_counter()
            calls[name]()
            times[name] = time.perf_counter() - start
        if r:
            out.append(times)
    return out


def agreement(model: torch.nn.Module, net: pg.Network, x: np.ndarray, target: int) -> float:
    """Max |provgraph − Captum| / max |Captum| of the input relevance, both float32 with LRP-ε
    (ε = 1e-9) and the logit initialisation, provgraph through the one-call API."""
    from captum.attr import LRP

    reference = LRP(model).attribute(torch.as_tensor(x).requires_grad_(), target=target)
    reference = reference.detach().double().numpy().reshape(-1)
    rel = pg.explain(net, x, target, semiring="real", rule="epsilon:1e-9", init="logit",
                     backend="torch")
    mine = np.asarray(rel.input, dtype=np.float64).reshape(-1)
    return float(np.max(np.abs(mine - reference)) / np.max(np.abs(reference)))


def table(rounds: list[dict[str, float]]) -> str:
    lines = ["| case | median |", "|---|---:|"]
    for name in rounds[0]:
        lines.append(f"| {name} | {_seconds(statistics.median(t[name] for t in rounds))} |")
    lines += ["", "| ratio (median over rounds) | value | target | met |", "|---|---:|---:|:-:|"]
    for case, ref, goal in RATIOS:
        value = statistics.median(t[case] / t[ref] for t in rounds)
        spread = [t[case] / t[ref] for t in rounds]
        met = "" if goal is None else ("yes" if value <= goal else "no")
        target = "" if goal is None else f"≤ {goal:.1f}×"
        lines.append(
            f"| {case} ÷ {ref} | {value:.2f}× (range {min(spread):.2f}–{max(spread):.2f}) "
            f"| {target} | {met} |"
        )
    return "\n".join(lines)


def _seconds(t: float) -> str:
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (after a warm-up)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="width-reduced VGG-16, 64×64")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, net, x, target = workload(args.quick)
    what = "VGG-16 ÷ 8, 1×3×64×64" if args.quick else "VGG-16, 1×3×224×224"
    print(f"{what}, class {target}; torch {torch.__version__}, {args.threads} threads, "
          f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    rounds = measure(cases(model, net, x, target), args.rounds)
    print(table(rounds))
    print(f"\nload average after: {os.getloadavg()[0]:.1f}; float32 explanations (one call vs "
          f"Captum, LRP-ε 1e-9, logit init) differ by at most "
          f"{agreement(model, net, x, target):.1e} of Captum's largest value")


if __name__ == "__main__":
    main()
