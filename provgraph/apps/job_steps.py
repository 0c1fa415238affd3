"""Jobs of several reductions (masks, evaluation, pruning) on one engine: :class:`JobSteps`.

A command such as ``provgraph masks`` runs more than one
:class:`~provgraph.apps.streaming.Reduction` (class statistics, then the masks' evaluation).
:class:`JobSteps` runs each through :func:`~provgraph.apps.distributed.run_job` on the same
engine: one cluster connection for all steps (``local:N`` starts its workers once), one resume
subfolder per step (so the steps' partitions do not overwrite each other), and the unreadable
samples of every step collected (each is logged by index and file where it is read; with
``strict``, the first one is raised).
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Any

from provgraph.apps.cluster import check_cluster, connect
from provgraph.apps.datasets import Dataset
from provgraph.apps.distributed import run_job
from provgraph.apps.partitions import BadSample
from provgraph.apps.streaming import Reduction


class JobSteps:
    """The engine shared by the reductions of one job; a context manager.

    Parameters
    ----------
    cluster : None, str or distributed.Client
        As :func:`~provgraph.apps.distributed.run_job` takes it (``None``: in-process, no Dask).
    resume : str or Path, optional
        Folder keeping completed partitions; step ``name`` keeps its own in ``resume/name``.
    strict : bool
        Stop at the first unreadable sample instead of leaving it out.
    progress : bool
        A progress bar per step.
    """

    def __init__(self, cluster: Any = None, resume: str | Path | None = None,
                 strict: bool = False, progress: bool = True) -> None:
        self.cluster = check_cluster(cluster)
        self.resume = None if resume is None else Path(resume)
        self.strict, self.progress = strict, progress
        self.bad_samples: list[BadSample] = []
        self._stack = ExitStack()
        self._engine: Any = None

    def __enter__(self) -> JobSteps:
        if self.cluster is not None:
            self._engine = self._stack.enter_context(connect(self.cluster))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self._stack.close()
        self._engine = None

    def run(self, name: str, dataset: Dataset, reduction: Reduction[Any, Any],
            chunk_size: int, start: int = 0, stop: int | None = None) -> Any:
        """The finished value of ``reduction`` over samples ``start..stop-1`` of ``dataset``."""
        if self.cluster is not None and self._engine is None:
            raise RuntimeError("JobSteps.run on a cluster needs the JobSteps context entered")
        result = run_job(dataset, reduction, cluster=self._engine, chunk_size=chunk_size,
                         resume=None if self.resume is None else self.resume / name,
                         strict=self.strict, progress=self.progress, start=start, stop=stop)
        # each is logged where it is read; one read by several steps is listed once
        self.bad_samples += [b for b in result.bad_samples if b not in self.bad_samples]
        return result.value
