"""provgraph: explain neural-network classifiers with semiring provenance (K-LRP)."""

from .annotate import AnnotatedGraph
from .api import annotate, explain, explain_batch, explain_many, load
from .batch import BatchGraph, BatchRelevance, explain_batched
from .composite import Composite, Entry, epsilon_gamma_box, layered, uniform
from .errors import (
    BudgetError,
    InputError,
    ModelLoadError,
    ProvgraphError,
    TargetError,
    UnsupportedOpError,
)
from .init import Contrastive
from .network import Network
from .relevance import Relevance
from .rules import LRPZB, Flat, LRPEpsilon, LRPGamma, LRPZero, MaxNormalized, Rule, WSquare
from .semirings import (
    BooleanSemiring,
    CountingSemiring,
    FuzzySemiring,
    RealSemiring,
    Semiring,
    TropicalSemiring,
    ViterbiSemiring,
    get_semiring,
)
from .theta import ConstantOne, IdentityTheta, NegLog, Theta, Threshold
from .trace import Trace, forward_trace

__version__ = "0.1.0"

__all__ = [
    "AnnotatedGraph",
    "BatchGraph",
    "BatchRelevance",
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
