"""Every built-in semiring through the one-call API: VGG-16 and MNIST × 1,000 against real LRP.

Workloads (the models of ``bench_torch.py``):

- VGG-16 with seeded random weights on one 1×3×224×224 input (``--quick``: widths ÷ 8 on
  64×64): ``pg.explain(net, x, semiring=S, keep=())`` with each semiring's default rule and Θ
  and ``backend="auto"`` (or ``--backends auto,torch`` for more rows). Columns: the time of one
  call after a warm-up call, × provgraph real in the same run, G edges/s (the network's edges
  over that time), the peak RSS of the row's own process (``VmHWM``, ONNX import included);
- the bundled MNIST MLP (784-300-100-10) on 1,000 real MNIST digits:
  ``pg.explain_batched(net, x, S, backend="auto", keep=())`` per semiring against Captum's LRP
  of the same model, median of ``--runs`` calls after a warm-up;
- both tables give the median and the best call (``--vgg-runs`` timed VGG-16 calls per row), and
  the load average when the row started: on a machine other jobs share, the best call is the
  figure least affected by their threads;
- the cold start: every numba kernel compiled from an empty cache directory (a child process
  explaining small networks under every semiring), minus the same run from the filled cache.

Counting on VGG-16 exceeds int64; the int64 row reports what the backend says, and a row with
``counting="float64"`` gives the time. Each row runs in its own process.

Run: ``.venv/bin/python benchmarks/bench_semirings.py [--quick] [--runs 3] [--vgg-runs 1]
[--only vgg16|mnist|cold-start] [--backends auto,torch] [--no-cold-start]
[--interleaved ROUNDS]``. (``--quick`` fits the scipy budget, so ``"auto"`` picks scipy there;
add ``numba`` to ``--backends``.)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

SEMIRINGS = ["real", "boolean", "counting", "counting:float64", "viterbi", "tropical", "fuzzy"]


def prepare(folder: Path, quick: bool, workloads: list[str]) -> dict[str, dict[str, str]]:
    """ONNX files and inputs of the workloads in ``folder``."""
    import bench_torch
    import models
    import torch

    out = {}
    if "vgg16" in workloads:
        torch.manual_seed(0)
        vgg = models.vgg16(width=8, side=64) if quick else models.vgg16()
        models.export_onnx(vgg, folder / "vgg16.onnx")
        shape = (1,) + tuple(vgg.input_shape)
        del vgg
        np.save(folder / "vgg16_x.npy", np.random.default_rng(0).uniform(0, 1, shape))
        out["vgg16"] = {"onnx": str(folder / "vgg16.onnx"), "x": str(folder / "vgg16_x.npy")}
    if "mnist" in workloads:
        out["mnist"] = bench_torch.prepare(folder, ["mnist"])["mnist"]
    return out


def explain_call(workload: str, semiring: str, backend: str, paths: dict[str, str]) -> Any:
    """A no-argument call of the one-call API (the network imported beforehand)."""
    import provgraph as pg
    from provgraph.backends import get_backend
    from provgraph.importers import load_onnx

    net = load_onnx(paths["onnx"])
    x = np.load(paths["x"]).astype(np.float32)
    name, _, counting = semiring.partition(":")
    engine: Any = backend
    if counting:
        engine = get_backend("auto" if backend == "auto" else backend, counting=counting)
    if workload == "vgg16":
        return net, lambda: pg.explain(net, x[0], semiring=name, backend=engine, keep=())
    return net, lambda: pg.explain_batched(net, x, name, backend=engine, keep=())


def worker(workload: str, case: str, paths: dict[str, str], runs: int) -> None:
    """Run one row in this process and print its times and peak RSS as JSON."""
    from bench_torch import case_function, peak_rss

    from provgraph.algebra.counting_carriers import CountOverflowError

    edges, info = 0, {}
    if case == "Captum LRP":
        call = case_function(case, workload, paths)
    else:
        semiring, backend = case.split("@")
        net, call = explain_call(workload, semiring, backend, paths)
        edges = net.num_edges() * (1000 if workload == "mnist" else 1)
    times = []
    try:
        for i in range(runs + 1):
            start = time.perf_counter()
            result = call()
            if i:
                times.append(time.perf_counter() - start)
            info = dict(getattr(result, "info", {}) or {})
    except CountOverflowError as exc:
        print(json.dumps({"error": f"CountOverflowError: {str(exc)[:70]}…", "rss": peak_rss()}))
        return
    print(json.dumps({"times": times, "rss": peak_rss(), "edges": edges,
                      "backend": info.get("backend", ""), "counting": info.get("counting", "")}))


def interleaved(workload: str, paths: dict[str, str], rounds: int) -> None:
    """Every row in one process: each round calls each row once, in turn (MNIST: Captum first).

    Load from other jobs comes in bursts of seconds; taking turns exposes every row to the same
    bursts, and each row's best round is the figure least affected by them. CPU time
    (``time.process_time``, every thread) is given too. (No peak RSS: the rows share the
    process.)
    """
    from bench_torch import case_function

    calls = {}
    if workload == "mnist":
        calls["Captum LRP"] = case_function("Captum LRP", "mnist", paths)
    for semiring in SEMIRINGS:
        calls[semiring] = explain_call(workload, semiring, "auto", paths)[1]
    wall: dict[str, list[float]] = {case: [] for case in calls}
    cpu: dict[str, list[float]] = {case: [] for case in calls}
    for i in range(rounds + 1):
        for case, call in calls.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            call()
            if i:
                wall[case].append(time.perf_counter() - start)
                cpu[case].append(time.process_time() - start_cpu)
    base = next(iter(calls))
    best_ref, cpu_ref = min(wall[base]), min(cpu[base])
    print(f"| {workload}, {rounds} rounds in turn | best | × {base} | median | best CPU time "
          f"| × {base} (CPU) |")
    print("|---|---:|---:|---:|---:|---:|")
    for case in calls:
        t, c = min(wall[case]), min(cpu[case])
        print(f"| {case} | {t:.4f} s | {t / best_ref:.1f}× | {statistics.median(wall[case]):.4f} s "
              f"| {c:.4f} s | {c / cpu_ref:.1f}× |")


def run(args: list[str], limit: float, env: dict[str, str] | None = None) -> dict:
    command = [sys.executable, __file__, "--worker", *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"over the {limit:.0f} s limit"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        err = (done.stderr or done.stdout).strip().splitlines()
        return {"error": err[-1] if err else f"exit {done.returncode}"}
    out = json.loads(lines[-1])
    if "times" in out:
        out["median"] = statistics.median(out["times"])
    return out


def cold_start(limit: float) -> tuple[float, float]:
    """Seconds of the kernel-exercising child from an empty numba cache, and from the filled one."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        times = []
        for _ in range(2):
            start = time.perf_counter()
            res = run(["compile", "-", "{}", "0"], limit, env)
            if "error" in res:
                raise SystemExit(f"cold start: {res['error']}")
            times.append(time.perf_counter() - start)
    return times[0], times[1]


def exercise_kernels() -> None:
    """Explain small networks so that every numba kernel runs once (for :func:`cold_start`)."""
    import models

    from provgraph import importers
    from provgraph.backends import NumbaBackend
    from provgraph.engine.annotation import AnnotatedGraph
    from provgraph.model.trace import forward_trace

    with tempfile.TemporaryDirectory() as tmp:
        for name in ("vgg_style", "pool_net"):
            net = importers.load_onnx(models.export_onnx(models.build(name), Path(tmp) / "m.onnx"))
            graph = AnnotatedGraph(net, forward_trace(net, np.ones(net.input_shape)))
            for semiring, rule in [("boolean", None), ("counting", None), ("viterbi", None),
                                   ("tropical", None), ("fuzzy", None), ("viterbi", "lrp0")]:
                graph.aggregate(semiring, rule=rule, backend=NumbaBackend())
    print(json.dumps({"times": [0.0], "rss": 0}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="VGG-16 ÷ 8 on 64×64")
    parser.add_argument("--runs", type=int, default=3, help="timed MNIST calls per row")
    parser.add_argument("--vgg-runs", type=int, default=1, help="timed VGG-16 calls per row")
    parser.add_argument("--backends", default="auto", help="comma-separated, e.g. auto,torch")
    parser.add_argument("--only", choices=("vgg16", "mnist", "cold-start"), default=None)
    parser.add_argument("--limit", type=float, default=1800.0, help="seconds per row")
    parser.add_argument("--no-cold-start", action="store_true", help="skip the compile timing")
    parser.add_argument("--interleaved", type=int, metavar="ROUNDS", default=0,
                        help="every row of --only (default mnist) in one process, in turn")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        workload, case, paths, runs = args.worker
        if workload == "compile":
            exercise_kernels()
        else:
            worker(workload, case, json.loads(paths), int(runs))
        return
    if not args.no_cold_start:
        cold, warm = cold_start(args.limit)
        print(f"cold start: {cold:.1f} s from an empty numba cache, {warm:.1f} s from the filled "
              f"one: compile ≈ {cold - warm:.1f} s (load average {os.getloadavg()[0]:.1f})\n",
              flush=True)
    if args.only == "cold-start":
        return
    backends = args.backends.split(",")
    if args.interleaved:
        workload = args.only if args.only in ("vgg16", "mnist") else "mnist"
        with tempfile.TemporaryDirectory() as tmp:
            paths = prepare(Path(tmp), args.quick, [workload])[workload]
            interleaved(workload, paths, args.interleaved)
        print(f"(load average {os.getloadavg()[0]:.1f})")
        return
    with tempfile.TemporaryDirectory() as tmp:
        workloads = prepare(Path(tmp), args.quick, [args.only] if args.only else
                            ["vgg16", "mnist"])
        for workload, paths in workloads.items():
            rows: dict[str, dict] = {}
            cases = [f"{s}@{b}" for b in backends for s in SEMIRINGS]
            if workload == "mnist":
                cases.insert(0, "Captum LRP")
            runs = args.vgg_runs if workload == "vgg16" else args.runs
            for case in cases:
                load = os.getloadavg()[0]
                rows[case] = run([workload, case, json.dumps(paths), str(runs)], args.limit)
                rows[case]["load"] = load
                print(f"{workload} {case}: {rows[case]} (load average {load:.1f})", flush=True)
            print()
            print(table(workload, rows, args.quick))
            print(flush=True)


def table(workload: str, rows: dict[str, dict], quick: bool) -> str:
    title = {"vgg16": "VGG-16 ÷ 8, 1×3×64×64" if quick else "VGG-16, 1×3×224×224",
             "mnist": "MNIST MLP × 1,000 digits"}[workload]
    base = "Captum LRP" if workload == "mnist" else "real@auto"
    ref = rows.get(base, {}).get("median")
    best_ref = min(rows.get(base, {}).get("times") or [0.0]) or None
    lines = [f"| {title} | backend | time (median) | × {base.replace('@auto', '')} | best | "
             "× (best) | G edges/s | peak RSS | load |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for case, res in rows.items():
        name = case.split("@")[0]
        if "error" in res:
            lines.append(f"| {name} | {case.partition('@')[2]} | {res['error']} | | | | | | |")
            continue
        t, best = res["median"], min(res["times"])
        ratio = f"{t / ref:.1f}×" if ref else ""
        best_ratio = f"{best / best_ref:.1f}×" if best_ref else ""
        rate = f"{res['edges'] / t / 1e9:.2f}" if res.get("edges") else ""
        lines.append(f"| {name} | {res.get('backend', '')} | {t:.3f} s | {ratio} | {best:.3f} s | "
                     f"{best_ratio} | {rate} | {res['rss'] / 2**30:.2f} GiB | "
                     f"{res.get('load', 0.0):.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
