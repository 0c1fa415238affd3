"""Throughput of one dataset job in-process, on ``local:1`` and on ``local:2``.

Workload: per-class Boolean relevance frequencies (class-wise masks) of the bundled MNIST MLP
over the 1,000 bundled test digits repeated ``--repeat`` times, read by the workers from one
``.npy`` stack, through the one-call API exactly as a user writes it::

    run_job(dataset, ClassRelevance(model, 10, "boolean"), cluster=..., chunk_size=50)

Every engine computes with one torch thread per process (the job's default, which makes
float64 results identical everywhere), so ``local:2`` can use both cores. For the clusters the
table gives the start-up (``LocalCluster`` of N single-threaded worker processes) apart from
the job, and the job twice: the first run pays each worker's torch import and model load, the
second is the steady state. The per-partition overhead is measured on ``local:2`` as the extra
time of the same job split into many partitions instead of few, divided by the extra
partitions. Target: warm ``local:2`` ≥ 1.6× warm ``local:1``.

``--vgg N`` also times the same job (Boolean, one thread) on N random 224×224 RGB images
through VGG-16 (random weights, ``tests/models.py``), in-process: the per-sample cost the README's
ImageNet-scale estimate is built on.

Run: ``.venv/bin/python benchmarks/bench_distributed.py [--repeat 3] [--vgg 2]``.
"""

from __future__ import annotations

import argparse
import os
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
    parser.add_argument("--vgg", type=int, default=0, help="also time N VGG-16 images")
    args = parser.parse_args()
    from distributed import Client

    from provgraph.apps.cluster import local_cluster

    with tempfile.TemporaryDirectory() as tmp:
        dataset = digit_stack(Path(tmp), args.repeat)
        job = ClassRelevance(ModelHandle(bundled_model_path()), 10, "boolean")
        n = len(dataset)
        rows, results = [], {}
        print(f"{n} digits, chunk {CHUNK}, load average {os.getloadavg()[0]:.2f}", flush=True)

        def once(cluster=None, partitions=None):  # type: ignore[no-untyped-def]
            return timed(lambda: run_job(dataset, job, cluster=cluster, chunk_size=CHUNK,
                                         partitions=partitions, progress=False))

        once(partitions=1)  # warm-up
        seconds, results["in-process"] = once()
        rows.append(("in-process", None, None, seconds))
        overhead = 0.0
        for workers in (1, 2):
            with ExitStack() as stack:  # local_cluster is what --cluster local:N starts
                start, cluster = timed(lambda w=workers: stack.enter_context(local_cluster(w)))
                client = stack.enter_context(Client(cluster))
                cold, _ = once(client)
                warm, results[f"local:{workers}"] = once(client)
                if workers == 2:
                    few, _ = once(client, 2)
                    many, _ = once(client, n // CHUNK)
                    overhead = (many - few) / (n // CHUNK - 2) * workers
            rows.append((f"local:{workers}", start, cold, warm))
        reference = results["in-process"].value
        same = all(np.array_equal(r.value.nonzero, reference.nonzero) for r in results.values())
        print("\n| engine | cluster start | first job | job (warm) | samples/s (warm) |")
        print("|---|---:|---:|---:|---:|")
        for name, start, cold, warm in rows:
            print(f"| {name} | {'-' if start is None else f'{start:.1f} s'} | "
                  f"{'-' if cold is None else f'{cold:.2f} s'} | {warm:.2f} s | {n / warm:.0f} |")
        by_name = {name: warm for name, _, _, warm in rows}
        print(f"\nlocal:2 / local:1 throughput: {by_name['local:1'] / by_name['local:2']:.2f}× "
              f"(target ≥ 1.6×); local:2 / in-process: "
              f"{by_name['in-process'] / by_name['local:2']:.2f}×")
        print(f"per-partition overhead (local:2, {n // CHUNK} vs 2 partitions): "
              f"{overhead * 1000:.1f} ms of worker time per partition")
        print(f"all engines give identical Boolean frequencies: {same}")
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
    seconds, result = timed(lambda: run_job(dataset, job, chunk_size=1, progress=False))
    print(f"\nVGG-16 Boolean, {count} images, in-process, 1 thread: {seconds:.1f} s, "
          f"{seconds / count:.1f} s per image (model imported before timing)")


if __name__ == "__main__":
    main()
