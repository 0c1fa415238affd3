"""Memory limits: the sizes a model declares, and those shape inference derives, must fit in
memory before anything is allocated for them."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from provgraph.errors import ModelLoadError


def memory_budget() -> int:
    """Default bytes a model's tensors may take: half the machine's physical memory.

    ``PROVGRAPH_MAX_MEMORY`` (bytes, or a number with a K/M/G/T suffix) overrides it.
    """
    given = os.environ.get("PROVGRAPH_MAX_MEMORY")
    if given:
        return parse_size(given)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def parse_size(text: str | int) -> int:
    """Bytes from ``"4G"``, ``"512M"``, ``"1.5T"`` or a plain integer."""
    if isinstance(text, int):
        return text
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    s = str(text).strip().upper().removesuffix("B").removesuffix("I")
    scale = units.get(s[-1:], 1)
    try:
        value = float(s[:-1] if s[-1:] in units else s) * scale
    except ValueError:
        raise ModelLoadError(f"memory size {text!r} is not a number of bytes (e.g. 4G)") from None
    if not np.isfinite(value) or value <= 0:
        raise ModelLoadError(f"memory size {text!r} must be positive")
    return int(value)


def check_tensor_size(shape: Sequence[int], tensor: str, name: str, budget: int) -> None:
    """Refuse a tensor whose float32 values for one sample would exceed ``budget`` bytes."""
    elements = 1
    for d in shape:
        elements *= int(d)
    if elements * 4 > budget:
        raise ModelLoadError(
            f"{name}: tensor {tensor!r} of shape {list(shape)} would take {_bytes(elements * 4)} "
            f"for one sample, over the memory budget of {_bytes(budget)} (raise it with "
            "--max-memory, max_memory= or PROVGRAPH_MAX_MEMORY)"
        )


def _bytes(n: int) -> str:
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n} bytes"
