"""Throughput of one dataset job in-process, on ``local:1`` and on ``local:2``.

Workload: per-class Boolean relevance frequencies (class-wise masks) of the bundled MNIST MLP
over the 1,000 bundled test digits repeated ``--repeat`` times, read by the workers from one
``.npy`` stack, through the one-call API exactly as a user writes it::

    run_job(dataset, ClassRelevance(model, 10, "boolean"), cluster=..., chunk_size=50)

(10 partitions of 5 chunks). Every engine computes with one torch thread per process (the
job's default, which makes float64 results identical everywhere), so ``local:2`` can use both
cores. Both clusters are started first (start-up timed: a ``LocalCluster`` of N single-threaded
worker processes) and run the job once (the first job pays each worker's torch import and model
load); then the engines run the job in ``--rounds`` rounds, in an order rotating from round to
round, so that load from other processes hits all engines alike; the table gives the median,
and the ratio is taken within each round. The per-partition overhead is measured on ``local:2``
as the extra time of the same job split into one partition per chunk instead of 2, divided by
the extra partitions (times 2 workers: worker time). Target: ``local:2`` ≥ 1.6× ``local:1``.

``--vgg N`` also times the same job (Boolean, one thread) on N random 224×224 RGB images
through VGG-16 (random weights, ``tests/models.py``), in-process: the per-sample cost the README's
ImageNet-scale estimate is built on.

Run: ``.venv/bin/python benchmarks/bench_distributed.py [--repeat 3] [--rounds 3] [--vgg 2]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from provgraph.apps.datasets import NpyDataset
from provgraph.apps.demo import bundled_model_path
from provgraph.apps.distributed import run_job
from provgraph.apps.model_handle import ModelHandle
from provgraph.apps.relevance_job import ClassRelevance
from provgraph.apps.sources import MNIST_PREPROCESSING, bundled_mnist

CHUNK = 50
PARTITIONS = 10


def digit_stack(folder: Path, repeat: int) -> NpyDataset:
    """The bundled test digits ``repeat`` times, as raw uint8 ``.npy`` with labels."""
    source = bundled_mnist("test")
    raw = np.round(source.read() * 255).astype(np.uint8)
    np.save(folder / "x.npy", np.tile(raw, (repeat, 1)))
    np.save(folder / "y.npy", np.tile(source.labels, repeat))
    return NpyDataset(folder / "x.npy", folder / "y.npy", classes=source.classes,
                      preprocessing=MNIST_PREPROCESSING)


def timed(call):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = call()
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="copies of the 1,000 digits")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per engine")
    parser.add_argument("--vgg", type=int, default=0, help="also time N VGG-16 images")
    parser.add_argument("--vgg-only", action="store_true", help="only the VGG-16 timing")
    args = parser.parse_args()
    if args.vgg_only:
        with tempfile.TemporaryDirectory() as tmp:
            vgg_cost(max(args.vgg, 1), Path(tmp))
        return
    from distributed import Client

    from provgraph.apps.cluster import local_cluster

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        dataset = digit_stack(Path(tmp), args.repeat)
        job = ClassRelevance(ModelHandle(bundled_model_path()), 10, "boolean")
        n = len(dataset)
        print(f"{n} digits, chunk {CHUNK}, {PARTITIONS} partitions, load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)

        def once(cluster=None, partitions=PARTITIONS):  # type: ignore[no-untyped-def]
            return timed(lambda: run_job(dataset, job, cluster=cluster, chunk_size=CHUNK,
                                         partitions=partitions, progress=False))

        once(partitions=1)  # warm-up
        engines: dict[str, object] = {"in-process": None}
        start, cold = {}, {}
        for workers in (1, 2):  # local_cluster is what --cluster local:N starts
            name = f"local:{workers}"
            start[name], cluster = timed(lambda w=workers: stack.enter_context(local_cluster(w)))
            engines[name] = stack.enter_context(Client(cluster))
            cold[name], _ = once(engines[name])
        times: dict[str, list[float]] = {name: [] for name in engines}
        results = {}
        names = list(engines)
        for r in range(args.rounds):  # the engines alternate, so drifting load hits all alike
            for name in names[r % 3:] + names[: r % 3]:
                seconds, results[name] = once(engines[name])
                times[name].append(seconds)
        warm = {name: statistics.median(t) for name, t in times.items()}
        ratios = [one / two for one, two in zip(times["local:1"], times["local:2"])]
        chunks = n // CHUNK
        few, _ = once(engines["local:2"], 2)
        many, _ = once(engines["local:2"], chunks)
        overhead = (many - few) / (chunks - 2) * 2
        reference = results["in-process"].value
        same = all(np.array_equal(r.value.nonzero, reference.nonzero) for r in results.values())
        print(f"\n| engine | cluster start | first job | job (median of {args.rounds}) | "
              f"samples/s |")
        print("|---|---:|---:|---:|---:|")
        for name in names:
            print(f"| {name} | {f'{start[name]:.1f} s' if name in start else '-'} | "
                  f"{f'{cold[name]:.2f} s' if name in cold else '-'} | {warm[name]:.2f} s | "
                  f"{n / warm[name]:.0f} |")
        print(f"\nlocal:2 / local:1 throughput: {statistics.median(ratios):.2f}× (per round: "
              f"{', '.join(f'{x:.2f}' for x in ratios)}; target ≥ 1.6×); local:2 / in-process: "
              f"{warm['in-process'] / warm['local:2']:.2f}×")
        print(f"per-partition overhead (local:2, {chunks} vs 2 partitions): "
              f"{overhead * 1000:.1f} ms of worker time per partition")
        print(f"all engines give identical Boolean frequencies: {same}; load average "
              f"{os.getloadavg()[0]:.2f}")
        if args.vgg:
            vgg_cost(args.vgg, Path(tmp))


def vgg_cost(count: int, folder: Path) -> None:
    """Seconds per sample of the Boolean job on VGG-16 (random weights), in-process."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import models

    path = models.export_onnx(models.vgg16(), folder / "vgg16.onnx")
    rng = np.random.default_rng(0)
    images = rng.random((count, 3, 224, 224), dtype=np.float32)
    np.save(folder / "vx.npy", images)
    np.save(folder / "vy.npy", np.arange(count) % 1000)
    dataset = NpyDataset(folder / "vx.npy", folder / "vy.npy")
    job = ClassRelevance(ModelHandle(path), 1000, "boolean")
    cpu = time.process_time()
    seconds, result = timed(lambda: run_job(dataset, job, chunk_size=1, progress=False))
    cpu = time.process_time() - cpu
    print(f"\nVGG-16 Boolean, {count} images, in-process, 1 thread (model imported before "
          f"timing): wall {seconds:.1f} s, CPU {cpu:.1f} s, {cpu / count:.1f} CPU s per image; "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
