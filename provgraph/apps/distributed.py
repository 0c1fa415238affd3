"""Dataset jobs on one process or a Dask cluster, with the same result: :func:`run_job`.

A job is a dataset and a :class:`~provgraph.apps.streaming.Reduction`. The dataset is split into
index-range partitions (:func:`~provgraph.apps.partitions.partition_ranges`, boundaries on
chunk multiples); each partition is mapped chunk by chunk and folded left to right
(:func:`~provgraph.apps.partitions.run_partition`), and the partition partials are folded left
to right in partition order (:func:`~provgraph.apps.streaming.combine_all`). The in-process
engine runs the same partitions one after the other, so for given ``chunk_size`` and
``partitions`` every engine adds the same numbers in the same order: results are identical,
bit for bit, also for float64 sums. (A plain :func:`~provgraph.apps.streaming.run_reduction`
over the whole range folds all chunks in one sequence; that equals the job exactly for integer
and Boolean partials, and up to float rounding for real ones.)

On a cluster, workers read their partition from the dataset's path themselves (datasets pickle
without their samples), the model's bytes are scattered once to every worker
(:class:`~provgraph.apps.model_handle.ModelHandle`), tasks are pure and retried, and a worker
that dies has its partitions recomputed elsewhere by the scheduler. With ``resume``, each
completed partition is stored with the hash of its inputs
(:class:`~provgraph.apps.job_store.JobStore`) and a rerun recomputes only the missing ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provgraph.apps.cluster import check_cluster, connect, describe_cluster
from provgraph.apps.datasets import Dataset
from provgraph.apps.job_store import JobStore
from provgraph.apps.model_handle import fingerprint, provide_models
from provgraph.apps.partitions import BadSample, PartitionResult, partition_ranges, run_partition
from provgraph.apps.streaming import Reduction, combine_all

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 64
DEFAULT_RETRIES = 2


@dataclass
class JobResult:
    """The outcome of :func:`run_job`.

    Attributes
    ----------
    value
        ``reduction.finish`` of the combined partials.
    partitions : list of (start, stop)
        The index ranges, in order.
    computed, reused : list of int
        Partitions computed by this run, and those kept from the resume folder.
    bad_samples : list of BadSample
        Samples that could not be read (index, file, reason), left out of ``value``.
    samples : int
        Samples reduced.
    outputs : list of str
        Per-sample output files, one per partition, in partition order.
    info : dict
        Where it ran, chunk size, partitions, dataset and models, for the job's outputs.
    """

    value: Any
    partitions: list[tuple[int, int]]
    computed: list[int]
    reused: list[int]
    bad_samples: list[BadSample]
    samples: int
    outputs: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def run_job(dataset: Dataset, reduction: Reduction[Any, Any], cluster: Any = None,
            partitions: int | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE,
            resume: str | Path | None = None, strict: bool = False, progress: bool = True,
            out: str | Path | None = None, retries: int = DEFAULT_RETRIES, start: int = 0,
            stop: int | None = None) -> JobResult:
    """Run ``reduction`` over ``dataset`` in-process or on a cluster; the same result either way.

    Parameters
    ----------
    dataset : Dataset
        Read by whoever runs a partition; on a cluster, its path must be visible to the workers.
    reduction : Reduction
        Any reduction; one needing a model should hold a
        :class:`~provgraph.apps.model_handle.ModelHandle`, so the model travels once per worker.
    cluster : None, str or distributed.Client
        ``None`` runs here (Dask is not imported); ``"local:N"``; ``"tcp://HOST:PORT"``; a client.
    partitions : int, optional
        Number of partitions (default: one per chunk, at most 64). Part of the result's identity:
        the same ``partitions`` and ``chunk_size`` give bit-identical results everywhere.
    chunk_size : int
        Samples per chunk (one ``reduction.map`` call).
    resume : str or Path, optional
        A folder keeping completed partitions; a rerun keeps those whose input hash matches.
    strict : bool
        Stop at the first unreadable sample instead of leaving it out.
    progress : bool
        A tqdm bar counting samples as partitions complete.
    out : str or Path, optional
        Folder for per-sample outputs (reductions with ``map_with_outputs``), one ``.npz`` per
        partition.
    retries : int
        How often a failed task is retried on a cluster.
    start, stop : int, optional
        Reduce only samples ``start..stop-1`` (default: all); partitions are laid out from
        ``start``, so the chunks are those of
        :func:`~provgraph.apps.streaming.run_reduction` over the same range.

    Returns
    -------
    JobResult
        The finished value, the bad samples, which partitions ran and which were kept.

    Raises
    ------
    DatasetError
        An empty dataset, bad sizes, or (``strict``) the first unreadable sample.
    ProvgraphError
        A cluster that cannot be used (Dask missing, scheduler unreachable).
    """
    check_cluster(cluster)
    stop = len(dataset) if stop is None else min(int(stop), len(dataset))
    ranges = [(a + start, b + start)
              for a, b in partition_ranges(stop - start, chunk_size, partitions)]
    job = _Job(dataset, reduction, ranges, chunk_size, strict, out, needs_models=(
        cluster is not None or resume is not None))
    store = JobStore(resume, job.description) if resume is not None else None
    results: dict[int, PartitionResult] = {}
    if store is not None:
        for number, (start, stop) in enumerate(ranges):
            kept = store.load(number, start, stop)
            if kept is not None:
                results[number] = kept
    reused = sorted(results)
    todo = [k for k in range(len(ranges)) if k not in results]
    from tqdm.auto import tqdm

    with tqdm(total=stop - start, unit="sample", disable=not progress,
              desc=f"{type(reduction).__name__} {describe_cluster(cluster)}") as bar:
        bar.update(sum(ranges[k][1] - ranges[k][0] for k in reused))

        def completed(number: int, result: PartitionResult) -> None:
            results[number] = result
            if store is not None:
                start, stop = ranges[number]
                store.save(number, start, stop, result)
            bar.update(ranges[number][1] - ranges[number][0])

        if cluster is None:
            for number in todo:
                completed(number, job.run(number))
        elif todo:
            _run_on_cluster(cluster, job, todo, completed, retries)
    ordered = [results[k] for k in range(len(ranges))]
    partials = [r.partial for r in ordered if r.partial is not None]
    value = reduction.finish(combine_all(reduction, partials))
    bad = [b for r in ordered for b in r.bad]
    return JobResult(value, ranges, todo, reused, bad, sum(r.samples for r in ordered),
                     [r.output for r in ordered if r.output is not None],
                     {"cluster": describe_cluster(cluster), **job.summary()})


class _Job:
    """What every partition task needs, and the description its results depend on."""

    def __init__(self, dataset: Dataset, reduction: Reduction[Any, Any],
                 ranges: list[tuple[int, int]], chunk_size: int, strict: bool,
                 out: str | Path | None, needs_models: bool) -> None:
        self.dataset, self.reduction, self.ranges = dataset, reduction, ranges
        self.chunk_size, self.strict = chunk_size, strict
        self.out = str(Path(out).resolve()) if out is not None else None
        digest, self.models = fingerprint(reduction) if needs_models else ("", {})
        self.description = {
            "dataset": dataset.as_dict(),
            "reduction": {"type": f"{type(reduction).__module__}.{type(reduction).__qualname__}",
                          "sha256": digest},
            "models": {d: h.describe() for d, h in self.models.items()},
            "chunk_size": chunk_size, "strict": strict, "out": self.out,
        }
        self.token = hashlib.sha256(json.dumps(self.description, sort_keys=True,
                                               default=str).encode()).hexdigest()[:16]

    def run(self, number: int) -> PartitionResult:
        start, stop = self.ranges[number]
        return run_partition(self.dataset, self.reduction, start, stop, self.chunk_size,
                             self.strict, self.out, number)

    def summary(self) -> dict[str, Any]:
        return {"partitions": len(self.ranges), "chunk_size": self.chunk_size,
                "dataset": self.dataset.as_dict(),
                "models": {d: h.describe() for d, h in self.models.items()}}


def _partition_task(payloads: dict[str, bytes], dataset: Dataset, reduction: Reduction[Any, Any],
                    start: int, stop: int, chunk_size: int, strict: bool, out: str | None,
                    number: int) -> PartitionResult:
    """One partition on a worker: the models made known, torch on the worker's threads."""
    provide_models(payloads)
    _use_worker_threads()
    return run_partition(dataset, reduction, start, stop, chunk_size, strict, out, number)


def _use_worker_threads() -> None:
    """As many torch threads as the worker has task threads (one per core it was given)."""
    import torch
    from distributed import get_worker

    threads = max(1, int(get_worker().state.nthreads))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _run_on_cluster(cluster: Any, job: _Job, todo: list[int],
                    completed: Callable[[int, PartitionResult], None], retries: int) -> None:
    """Submit the partitions ``todo``; report each as it completes; the first error stops."""
    from distributed import as_completed

    with connect(cluster) as client:
        payloads = {digest: handle.payload for digest, handle in job.models.items()}
        shared = client.scatter([payloads, job.dataset, job.reduction], broadcast=True,
                                hash=False)
        futures = {}
        for number in todo:
            start, stop = job.ranges[number]
            future = client.submit(
                _partition_task, *shared, start, stop, job.chunk_size, job.strict, job.out,
                number, key=f"provgraph-partition-{job.token}-{number}",
                retries=retries)
            futures[future.key] = (number, future)
        try:
            for future in as_completed([f for _, f in futures.values()]):
                completed(futures[future.key][0], future.result())
        finally:
            client.cancel([f for _, f in futures.values()])
            client.cancel(shared)
