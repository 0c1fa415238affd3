"""Fuzz the public API: mutated models, inputs and options against the error contract.

    python benchmarks/fuzz_models.py --cases 20000 --seed 1 --workers 2

Each case starts from a real export (four torch models, one skl2onnx classifier) and mutates its
bytes, graph, attributes, initializers, opset, external data, input or options
(``tests/fuzzing/mutations.py``). A case must end in a finite explanation or a one-line
``ProvgraphError``, within 20 s and 2 GiB, and an explained mutated model must compute the logits
onnxruntime computes (when onnxruntime accepts it). Prints the outcome table per family and every
case that broke the contract; exits 1 if any did.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path[:0] = [str(TESTS), str(TESTS / "fuzzing")]


def _run(chunk: tuple[int, int, int]) -> list:
    import torch

    torch.set_num_threads(1)
    from harness import run_cases

    start, stop, seed = chunk
    return [(o.kind, o.case.family, o.line()) for o in run_cases(range(start, stop), seed)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=500)
    args = parser.parse_args()
    from harness import BAD, GOOD

    chunks = [(s, min(s + args.chunk, args.cases), args.seed)
              for s in range(0, args.cases, args.chunk)]
    begin = time.perf_counter()
    results = []
    with ProcessPoolExecutor(args.workers) as pool:
        for part in pool.map(_run, chunks):
            results.extend(part)
            print(f"  {len(results):,} / {args.cases:,} cases", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - begin
    kinds = list(GOOD + BAD)
    families = sorted({f for _, f, _ in results})
    print(f"| family | cases | {' | '.join(kinds)} |")
    print("|" + "---|" * (len(kinds) + 2))
    for fam in families + ["all"]:
        row = [sum(1 for k, f, _ in results if k == kind and fam in (f, "all")) for kind in kinds]
        print(f"| {fam} | {sum(row):,} | {' | '.join(f'{v:,}' for v in row)} |")
    print(f"\n{len(results):,} cases, seed {args.seed}, in {elapsed:.0f} s with {args.workers} "
          "workers")
    bad = [line for kind, _, line in results if kind in BAD]
    for line in bad:
        print(line)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
