"""provgraph: explain neural-network classifiers with semiring provenance (K-LRP).

The public names below are imported on first use (PEP 562), so that ``import provgraph`` and the
command line's ``--help`` do not pay for torch, sympy or matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # algebra
    "Composite": "provgraph.algebra.composites",
    "Entry": "provgraph.algebra.composites",
    "epsilon_gamma_box": "provgraph.algebra.composites",
    "layered": "provgraph.algebra.composites",
    "uniform": "provgraph.algebra.composites",
    "LRPZB": "provgraph.algebra.rules",
    "Flat": "provgraph.algebra.rules",
    "LRPEpsilon": "provgraph.algebra.rules",
    "LRPGamma": "provgraph.algebra.rules",
    "LRPZero": "provgraph.algebra.rules",
    "MaxNormalized": "provgraph.algebra.rules",
    "Rule": "provgraph.algebra.rules",
    "WSquare": "provgraph.algebra.rules",
    "RuleForm": "provgraph.algebra.rule_form",
    "Term": "provgraph.algebra.rule_form",
    "Weights": "provgraph.algebra.rule_form",
    "BooleanSemiring": "provgraph.algebra.semirings",
    "CountingSemiring": "provgraph.algebra.semirings",
    "FuzzySemiring": "provgraph.algebra.semirings",
    "RealSemiring": "provgraph.algebra.semirings",
    "Semiring": "provgraph.algebra.semirings",
    "TropicalSemiring": "provgraph.algebra.semirings",
    "ViterbiSemiring": "provgraph.algebra.semirings",
    "get_semiring": "provgraph.algebra.semirings",
    "ConstantOne": "provgraph.algebra.theta",
    "IdentityTheta": "provgraph.algebra.theta",
    "Log": "provgraph.algebra.theta",
    "NegLog": "provgraph.algebra.theta",
    "Theta": "provgraph.algebra.theta",
    "Threshold": "provgraph.algebra.theta",
    # the one-call API
    "annotate": "provgraph.api",
    "explain": "provgraph.api",
    "explain_batch": "provgraph.api",
    "explain_many": "provgraph.api",
    "explain_batched": "provgraph.api",
    "Explainer": "provgraph.engine.explainer",
    "load": "provgraph.api",
    # engine
    "AnnotatedGraph": "provgraph.engine.annotation",
    "BatchGraph": "provgraph.engine.batch",
    "BatchRelevance": "provgraph.engine.batch",
    "Contrastive": "provgraph.engine.initialisation",
    "Relevance": "provgraph.engine.relevance",
    # errors
    "BudgetError": "provgraph.errors",
    "InputError": "provgraph.errors",
    "ModelLoadError": "provgraph.errors",
    "ProvgraphError": "provgraph.errors",
    "TargetError": "provgraph.errors",
    "UnsupportedOpError": "provgraph.errors",
    # model
    "Network": "provgraph.model.network",
    "Trace": "provgraph.model.trace",
    "forward_trace": "provgraph.model.trace",
}

__all__ = [
    "AnnotatedGraph",
    "BatchGraph",
    "BatchRelevance",
    "BooleanSemiring",
    "BudgetError",
    "Composite",
    "ConstantOne",
    "Contrastive",
    "CountingSemiring",
    "Entry",
    "Explainer",
    "Flat",
    "FuzzySemiring",
    "IdentityTheta",
    "InputError",
    "Log",
    "LRPEpsilon",
    "LRPGamma",
    "LRPZB",
    "LRPZero",
    "MaxNormalized",
    "ModelLoadError",
    "NegLog",
    "Network",
    "ProvgraphError",
    "RealSemiring",
    "Relevance",
    "Rule",
    "RuleForm",
    "Semiring",
    "TargetError",
    "Term",
    "Theta",
    "Threshold",
    "Trace",
    "TropicalSemiring",
    "UnsupportedOpError",
    "ViterbiSemiring",
    "Weights",
    "WSquare",
    "annotate",
    "epsilon_gamma_box",
    "explain",
    "explain_batch",
    "explain_batched",
    "explain_many",
    "forward_trace",
    "get_semiring",
    "layered",
    "load",
    "uniform",
]


def __getattr__(name: str) -> Any:
    """Import the module that defines ``name`` on first access and cache the attribute."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'provgraph' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from provgraph.algebra.composites import (
        Composite,
        Entry,
        epsilon_gamma_box,
        layered,
        uniform,
    )
    from provgraph.algebra.rule_form import RuleForm, Term, Weights
    from provgraph.algebra.rules import (
        LRPZB,
        Flat,
        LRPEpsilon,
        LRPGamma,
        LRPZero,
        MaxNormalized,
        Rule,
        WSquare,
    )
    from provgraph.algebra.semirings import (
        BooleanSemiring,
        CountingSemiring,
        FuzzySemiring,
        RealSemiring,
        Semiring,
        TropicalSemiring,
        ViterbiSemiring,
        get_semiring,
    )
    from provgraph.algebra.theta import ConstantOne, IdentityTheta, Log, NegLog, Theta, Threshold
    from provgraph.api import annotate, explain, explain_batch, explain_batched, explain_many, load
    from provgraph.engine.annotation import AnnotatedGraph
    from provgraph.engine.batch import BatchGraph, BatchRelevance
    from provgraph.engine.explainer import Explainer
    from provgraph.engine.initialisation import Contrastive
    from provgraph.engine.relevance import Relevance
    from provgraph.errors import (
        BudgetError,
        InputError,
        ModelLoadError,
        ProvgraphError,
        TargetError,
        UnsupportedOpError,
    )
    from provgraph.model.network import Network
    from provgraph.model.trace import Trace, forward_trace
