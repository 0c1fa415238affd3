"""provgraph: explain neural-network classifiers with semiring provenance (K-LRP)."""

from provgraph.algebra.composites import Composite, Entry, epsilon_gamma_box, layered, uniform
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
from provgraph.algebra.theta import ConstantOne, IdentityTheta, NegLog, Theta, Threshold
from provgraph.api import annotate, explain, explain_batch, explain_many, load
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.batch import BatchGraph, BatchRelevance, explain_batched
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

__version__ = "0.1.0"

__all__ = [
    "AnnotatedGraph",
    "BatchGraph",
    "BatchRelevance",
    "Explainer",
    "annotate",
    "explain",
    "explain_batch",
    "explain_batched",
    "explain_many",
    "load",
    "BooleanSemiring",
    "BudgetError",
    "Composite",
    "ConstantOne",
    "Contrastive",
    "CountingSemiring",
    "Entry",
    "Flat",
    "FuzzySemiring",
    "IdentityTheta",
    "InputError",
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
    "Semiring",
    "TargetError",
    "Theta",
    "Threshold",
    "Trace",
    "TropicalSemiring",
    "UnsupportedOpError",
    "ViterbiSemiring",
    "WSquare",
    "epsilon_gamma_box",
    "forward_trace",
    "get_semiring",
    "layered",
    "uniform",
]
