"""Kernels run in parallel from a thread pool: compiled once without numba's parfors.

A ``@numba.njit(parallel=True)`` kernel costs seconds of compilation for the parallel loop
alone, paid on every cold start. A kernel whose tasks are independent rows instead compiles as
a plain ``@numba.njit(nogil=True, cache=True)`` function over a range of rows, and
:func:`over_rows` calls it from as many threads as numba would use
(:func:`numba.get_num_threads`), each on its own share of the rows (no two share a row: no
races).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba
from numba.core import cgutils
from numba.extending import intrinsic

#: tasks per thread, so that rows of unequal cost even out
SHARES_PER_THREAD = 4

_POOL: dict[int, ThreadPoolExecutor] = {}


def over_rows(kernel: Callable[..., Any], n_rows: int, *args: Any) -> list[Any]:
    """``[kernel(*args, start, stop) for each share of range(n_rows)]``, run in parallel."""
    n_threads = max(1, numba.get_num_threads())
    n_tasks = min(n_rows, n_threads * SHARES_PER_THREAD)
    if n_threads == 1 or n_tasks <= 1:
        return [kernel(*args, 0, n_rows)]
    bounds = [n_rows * i // n_tasks for i in range(n_tasks + 1)]
    pool = _POOL.get(n_threads)
    if pool is None:
        pool = _POOL[n_threads] = ThreadPoolExecutor(n_threads, thread_name_prefix="provgraph")
    futures = [pool.submit(kernel, *args, a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
    return [f.result() for f in futures]


@intrinsic
def borrowed(typingctx, array):
    """A view of ``array`` that holds no reference (no memory-info pointer).

    A slice of an array is a new reference: taking one in a kernel's inner loop increments and
    decrements the parent's reference count, an atomic operation on memory shared by every
    thread of :func:`over_rows`. A row kernel takes its arrays through this once, so that their
    slices count no references (the caller keeps the arrays alive for the call)."""
    def codegen(context, builder, signature, args):
        view = context.make_array(signature.args[0])(context, builder, value=args[0])
        view.meminfo = cgutils.get_null_value(view.meminfo.type)
        return view._getvalue()

    return array(array), codegen
