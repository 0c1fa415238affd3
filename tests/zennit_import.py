"""Import Zennit beside a torch build that has no matching torchvision.

Zennit's package ``__init__`` imports its torchvision canonizers, which import
``torchvision.models.resnet`` only for two class names. A stand-in module with those names lets
the rest of Zennit (rules, composites, attributors) load; nothing of torchvision is used.
"""

from __future__ import annotations

import importlib
import sys
import types

import pytest
import torch


def import_zennit() -> types.ModuleType:
    """Return the ``zennit`` package, providing a torchvision stand-in when needed."""
    stand_in = False
    try:
        import torchvision  # noqa: F401
    except Exception:  # absent, or present but unloadable beside this torch
        stand_in = True
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        tv = types.ModuleType("torchvision")
        models = types.ModuleType("torchvision.models")
        resnet = types.ModuleType("torchvision.models.resnet")
        resnet.Bottleneck = type("Bottleneck", (torch.nn.Module,), {})
        resnet.BasicBlock = type("BasicBlock", (torch.nn.Module,), {})
        tv.models, models.resnet = models, resnet
        sys.modules.update(
            {"torchvision": tv, "torchvision.models": models, "torchvision.models.resnet": resnet}
        )
    try:
        zennit = importlib.import_module("zennit")
    except ImportError as exc:  # pragma: no cover - reported as a failure, not a skip
        pytest.fail(f"zennit is required for the LRP oracle tests: {exc}")
    finally:
        if stand_in:  # only zennit's import reads it; later importers (transformers asks
            # importlib for torchvision's spec, which a stand-in has not) must not see it
            for name in ("torchvision.models.resnet", "torchvision.models", "torchvision"):
                sys.modules.pop(name, None)
    return zennit
