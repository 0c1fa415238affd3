"""The registered backends a test on this machine can run: those that run on the CPU."""

from __future__ import annotations

from provgraph.backends import BACKENDS

CPU_BACKENDS = [name for name, cls in BACKENDS.items() if "cpu" in cls.capabilities.devices]
