"""Peak memory of one VGG-16 explanation: provgraph (every semiring) against Captum's LRP.

Workload: VGG-16 (random weights, seed 0; ``tests/models.py``), one 1×3×224×224 input, its
predicted class. Each case runs in a fresh subprocess that does everything a user's script does,
and reports its peak resident set size (``VmHWM`` of ``/proc/self/status``, which counts every
byte the process held at its worst moment, the ONNX import included):

- ``import only``: ``pg.load("vgg16.onnx")``;
- ``provgraph real``: ``pg.explain("vgg16.onnx", x, semiring="real", backend=B)``
  (import + forward trace + explanation, one call; ``B`` is ``--backend``, ``auto`` by default,
  which on the CPU is the numba backend);
- ``provgraph boolean``, ``… counting``, ``… viterbi``, ``… tropical``, ``… fuzzy``: the same
  with that semiring;
- ``Captum LRP``: the torch module built and loaded from its state dict, then
  ``LRP(model).attribute(x, target=target)``.

Target: real and Boolean ≤ 1.5× Captum's process (the other semirings: aim). Also printed:
the wall time of the call (import included for provgraph, module construction for Captum) and
``import only`` for reference.

Run: ``.venv/bin/python benchmarks/bench_memory.py [--cases "provgraph real,Captum LRP"]
[--backend auto] [--quick]`` (``--quick``: a width-reduced VGG-16, channels ÷ 8 on 64×64, in
seconds).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import models  # noqa: E402

SEMIRINGS = ("real", "boolean", "counting", "viterbi", "tropical", "fuzzy")
CASES = ("import only", *(f"provgraph {s}" for s in SEMIRINGS), "Captum LRP")
DEFAULT_CASES = ("import only", "provgraph real", "provgraph boolean", "Captum LRP")
TARGET = 1.5


def peak_rss() -> int:
    """This process's peak resident set size in bytes (``VmHWM``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def build(folder: Path, quick: bool) -> dict[str, str]:
    """Export the workload once: the ONNX file, the torch state dict, the input."""
    torch.manual_seed(0)
    model = models.vgg16(width=8, side=64) if quick else models.vgg16()
    side = model.input_shape[-1]
    torch.save(model.state_dict(), folder / "vgg16.pt")
    models.export_onnx(model, folder / "vgg16.onnx")
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, side, side)).astype(np.float32)
    np.save(folder / "x.npy", x)
    return {"onnx": str(folder / "vgg16.onnx"), "torch": str(folder / "vgg16.pt"),
            "x": str(folder / "x.npy"), "quick": quick}


def run_case(case: str, paths: dict) -> dict:
    """Run ``case`` in this process (the child) and return its peak RSS and time."""
    x = np.load(paths["x"])
    start = time.perf_counter()
    if case == "Captum LRP":
        from captum.attr import LRP

        model = models.vgg16(width=8, side=64) if paths["quick"] else models.vgg16()
        model.load_state_dict(torch.load(paths["torch"]))
        for p in model.parameters():
            p.requires_grad_(False)
        xt = torch.as_tensor(x)
        with torch.no_grad():
            target = int(model(xt).argmax())
        LRP(model).attribute(xt.clone().requires_grad_(), target=target)
    else:
        import provgraph as pg

        if case == "import only":
            pg.load(paths["onnx"])
        else:
            pg.explain(paths["onnx"], x, semiring=case.split()[-1], backend=paths["backend"])
    return {"rss": peak_rss(), "seconds": time.perf_counter() - start}


def measure(case: str, paths: dict) -> dict:
    """Run ``case`` in a fresh subprocess."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", case, "--paths", json.dumps(paths)],
        capture_output=True, text=True, check=False,
    )
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": tail}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES),
                        help=f"comma-separated, of: {', '.join(CASES)}")
    parser.add_argument("--backend", default="auto", help="provgraph's backend (auto, torch, …)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--paths", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, json.loads(args.paths))))
        return
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        parser.error(f"unknown cases {unknown}; known: {', '.join(CASES)}")
    if "Captum LRP" in cases:  # first, so that every row can give its ratio
        cases = ["Captum LRP"] + [c for c in cases if c != "Captum LRP"]
    what = "VGG-16 ÷ 8, 1×3×64×64" if args.quick else "VGG-16, 1×3×224×224"
    print(f"Peak RSS (VmHWM) of one explanation, each case in its own process: {what}, "
          f"backend={args.backend}\n")
    print("| case | peak RSS | × Captum | target | time |")
    print("|---|---:|---:|---:|---:|", flush=True)
    captum = None
    with tempfile.TemporaryDirectory() as tmp:
        paths = {**build(Path(tmp), args.quick), "backend": args.backend}
        for case in cases:
            r = measure(case, paths)
            if case == "Captum LRP":
                captum = r.get("rss")
            _row(case, r, captum)


def _row(case: str, r: dict, captum: int | None) -> None:
    """One table row, printed as soon as its case has run."""
    if "error" in r:
        print(f"| {case} | failed: {r['error']} | | | |", flush=True)
        return
    ratio = f"{r['rss'] / captum:.2f}×" if captum else "—"
    target = f"≤ {TARGET}×" if case in ("provgraph real", "provgraph boolean") else ""
    print(f"| {case} | {r['rss'] / 2**30:.2f} GiB | {ratio} | {target} | "
          f"{r['seconds']:.1f} s |", flush=True)


if __name__ == "__main__":
    main()
