"""Where a dataset job runs: in this process, or on a Dask cluster (imported only then).

A cluster is named by what a user has: nothing (in-process), ``"local:N"`` (a ``LocalCluster``
of N single-threaded worker processes on this machine, started for the job and closed after
it), ``"tcp://HOST:PORT"`` (the scheduler of a running cluster) or a ``dask.distributed.Client``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from provgraph.errors import InputError, ProvgraphError

LOCAL = re.compile(r"local:([0-9]+)")
ADDRESS = re.compile(r"(tcp|tls|inproc|ucx|ws|wss)://\S+")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
"""Environment of local workers: one thread each, so N workers use N cores."""
UNSET = ("MALLOC_TRIM_THRESHOLD_",)
"""Left out of local workers' environment: Dask's default trim threshold (64 KiB) fixes glibc's
mmap threshold, so every large temporary array is mapped and faulted in afresh; on the bundled
MLP's Boolean job that costs about 1.8× the CPU time."""


def check_cluster(cluster: Any) -> Any:
    """``cluster`` if it names a cluster (see the module), else a one-line :class:`InputError`."""
    if cluster is None or not isinstance(cluster, str):
        return cluster
    match = LOCAL.fullmatch(cluster)
    if match and int(match.group(1)) >= 1:
        return cluster
    if ADDRESS.fullmatch(cluster):
        return cluster
    raise InputError(f"cluster {cluster!r} is not local:N (N ≥ 1 worker processes) or a "
                     f"scheduler address like tcp://HOST:PORT")


def describe_cluster(cluster: Any) -> str:
    """How outputs name where the job ran."""
    if cluster is None:
        return "in-process"
    return cluster if isinstance(cluster, str) else f"client of {cluster.scheduler.address}"


def _dask() -> Any:
    try:
        import distributed
    except ImportError:
        raise ProvgraphError("running on a cluster needs Dask: pip install "
                             "'provgraph[distributed]'") from None
    return distributed


@contextmanager
def local_cluster(workers: int, host: str | None = None) -> Iterator[Any]:
    """A ``LocalCluster`` of ``workers`` single-threaded processes, closed on exit."""
    import dask

    distributed = _dask()
    environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()
               if k not in UNSET}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": {**environ, **ONE_THREAD}}):
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1,
                                           processes=True, host=host, dashboard_address=None,
                                           env=dict(ONE_THREAD))
    with cluster:
        yield cluster


@contextmanager
def connect(cluster: Any) -> Iterator[Any]:
    """A ``distributed.Client`` for ``cluster`` (a client is used as it is and left open).

    Raises
    ------
    ProvgraphError
        Dask is not installed, or the scheduler cannot be reached (the message names it).
    """
    distributed = _dask()
    if isinstance(cluster, distributed.Client):
        yield cluster
        return
    check_cluster(cluster)
    match = LOCAL.fullmatch(cluster)
    if match:
        with local_cluster(int(match.group(1))) as local, distributed.Client(local) as client:
            yield client
        return
    try:
        client = distributed.Client(cluster, timeout=30)
    except (OSError, TimeoutError) as exc:
        raise ProvgraphError(f"cannot reach the scheduler at {cluster}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                             ) from None
    with client:
        yield client
