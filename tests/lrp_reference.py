"""Captum and Zennit LRP on the torch models behind the ONNX files, configured like provgraph.

How each library is set up to compute what provgraph's real semiring computes under LRP-ε:

* Linear and Conv2d: Zennit ``Epsilon(ε)`` / Captum ``EpsilonRule(ε)``; both stabilise
  ``z + ε·sign(z)`` with ``sign(0) = +1``, like :class:`~provgraph.algebra.rules.LRPEpsilon`.
* Average pooling (also adaptive) and residual sums: Zennit's ``Norm`` rule, LRP-0 with a
  stabiliser of 1e-6 (provgraph: ``LRPEpsilon(1e-6)`` on ``AvgPool``, ``GlobalAvgPool`` and
  ``Add``). A residual ``a + b`` written with ``+`` has no module a rule can attach to, so a Zennit
  canonizer (:class:`~zennit.canonizers.AttributeCanonizer`, the way Zennit's own ResNet canonizer
  works) swaps the block's ``forward`` for one that sums through a ``zennit.layer.Sum`` module.
* Activations (ReLU, HardSwish): Zennit ``Pass`` (relevance passes unchanged, provgraph's
  passthrough). Max pooling: the gradient (winner takes all).
* Squeeze-excitation ``x · gate(x)``: ``Pass`` on the whole module, so relevance follows the
  signal ``x`` and the gate branch gets none, as provgraph's gate op.
* BatchNorm: both libraries run on torch's own fusion of each BatchNorm into the preceding
  convolution, as the ONNX importer folds it. (Zennit's ``SequentialMergeBatchNorm`` leaves a BN
  that divides by ``sqrt(1 + eps)``: on the VGG-style model its relevance moves by about 1e-4
  relative, as much as the tolerance.)
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from captum.attr import LRP
from captum.attr._utils.lrp_rules import EpsilonRule
from models import InvertedResidual, ResidualCNN, SqueezeExcite
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from zennit_import import import_zennit

from provgraph.algebra.composites import Composite, Entry
from provgraph.algebra.rules import LRPEpsilon

import_zennit()
from zennit.attribution import Gradient  # noqa: E402
from zennit.canonizers import AttributeCanonizer  # noqa: E402
from zennit.core import Composite as ZennitComposite  # noqa: E402
from zennit.layer import Sum  # noqa: E402
from zennit.rules import Epsilon, Norm, Pass  # noqa: E402
from zennit.types import Activation, AvgPool  # noqa: E402

NORM_STABILIZER = 1e-6


def provgraph_composite(epsilon: float) -> Composite:
    """LRP-ε on Dense and Conv, LRP-0 (stabiliser 1e-6) on pooling and residual sums."""
    norm = LRPEpsilon(NORM_STABILIZER)
    return Composite(
        LRPEpsilon(epsilon),
        [Entry("AvgPool", norm), Entry("GlobalAvgPool", norm), Entry("Add", norm)],
    )


def _summed_forward(module: nn.Module) -> dict | None:
    """A residual module's ``forward`` rewritten to add through a ``Sum`` module."""
    total = Sum()
    if isinstance(module, InvertedResidual):

        def forward(x: torch.Tensor) -> torch.Tensor:
            body = module.project(module.se(module.depthwise(module.expand(x))))
            return total(torch.stack([x, body], dim=-1))

    elif isinstance(module, ResidualCNN):

        def forward(x: torch.Tensor) -> torch.Tensor:
            h = module.stem(x)
            h = torch.relu(total(torch.stack([module.block(h), h], dim=-1)))
            h = module.gap(module.pool(h))
            return module.fc(h.view(h.size(0), -1))

    else:
        return None
    return {"forward": forward, "residual_sum": total}


def zennit_lrp(model: nn.Module, x: torch.Tensor, targets: list[int], epsilon: float) -> np.ndarray:
    """Zennit's LRP-ε of a batch, seeded with the one-hot targets (provgraph's ``init="one"``)."""

    def module_map(ctx: dict, name: str, module: nn.Module) -> object | None:
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            return Epsilon(epsilon)
        if isinstance(module, (SqueezeExcite, Activation)):
            return Pass()
        if isinstance(module, (Sum, AvgPool)):
            return Norm(NORM_STABILIZER)
        return None

    canonizers = [AttributeCanonizer(lambda n, m: _summed_forward(m))]
    composite = ZennitComposite(module_map=module_map, canonizers=canonizers)
    model = fuse_batchnorm(model)
    with Gradient(model, composite) as attributor:
        seed = torch.zeros_like(model(x))
        seed[range(len(targets)), targets] = 1.0
        _, relevance = attributor(x.clone(), seed)
    return relevance.detach().numpy()


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with each Conv2d followed by a BatchNorm2d in one ``nn.Sequential``
    replaced by torch's own fused convolution."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        if not isinstance(parent, nn.Sequential):
            continue
        kept: list[nn.Module] = []
        for m in parent:
            if isinstance(m, nn.BatchNorm2d) and kept and isinstance(kept[-1], nn.Conv2d):
                kept[-1] = fuse_conv_bn_eval(kept[-1], m)
            else:
                kept.append(m)
        parent._modules = {str(i): m for i, m in enumerate(kept)}
    return model


def captum_lrp(model: nn.Module, x: torch.Tensor, targets: list[int], epsilon: float) -> np.ndarray:
    """Captum's LRP-ε (classic LRP: provgraph's ``init="logit"``) of the BN-fused model."""
    fused = fuse_batchnorm(model)
    for m in fused.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            m.rule = EpsilonRule(epsilon)
    attribution = LRP(fused).attribute(x.clone().requires_grad_(True), target=targets)
    return attribution.detach().numpy()
