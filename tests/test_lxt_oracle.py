"""The real semiring against LXT (Achtibat et al., AttnLRP, ICML 2024) on the same models.

LXT computes LRP as gradient × input of a patched torch model: its attention wrappers
(``lxt.efficient.patches.wrap_attention_forward``: the uniform rule, ``Q`` and ``K`` a quarter,
``V`` half; ``cp_wrap_attention_forward``: no gradient through ``Q`` and ``K``), the identity rule
on the activations (``identity_rule_implicit``) and the plain gradient of the softmax (its
Taylor rule). They are applied here to the Hugging Face ViT and BERT, in float64, on the
models whose ONNX exports provgraph explains, and the input relevance (pixels; BERT's word
embeddings, per dimension) must agree within 1e-4 relative.

LayerNorm: provgraph's identity rule takes the mean and the standard deviation as constants of
the forward pass (:mod:`provgraph.model.ops.normalization`); LXT's ``layer_norm_forward``
detaches only the standard deviation. The LayerNorms are patched here with LXT's
``stop_gradient`` on both, so that both sides apply the same rule.
"""

from __future__ import annotations

import copy
import functools
import types
from typing import Any

import numpy as np
import pytest
import torch
from lxt_import import import_lxt
from torch import nn
from transformer_models import example_inputs, exported
from transformers.activations import GELUActivation
from transformers.models.bert import modeling_bert
from transformers.models.vit import modeling_vit

import provgraph as pg

RULES, PATCHES = import_lxt()
MODULES = {"vit": modeling_vit, "bert": modeling_bert}


def identity_layer_norm(self: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    mean = RULES.stop_gradient(x.mean(dim=-1, keepdim=True))
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    y = (x - mean) / RULES.stop_gradient((var + self.eps).sqrt())
    return y * self.weight + self.bias


def patched(model: nn.Module) -> nn.Module:
    """A float64 copy with LXT's identity rules on activations and normalisations."""
    model = copy.deepcopy(model).double().eval()
    for m in model.modules():
        if isinstance(m, nn.LayerNorm):
            m.forward = types.MethodType(identity_layer_norm, m)
        elif isinstance(m, (GELUActivation, nn.Tanh, nn.GELU)):
            m.forward = functools.partial(RULES.identity_rule_implicit, m.forward)
    return model


def lxt_relevance(name: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, int]:
    """LXT's input relevance (gradient × input of the predicted logit) and that class."""
    e = exported(name)
    module = MODULES[name]
    wrap = {"attnlrp": PATCHES.wrap_attention_forward,
            "cp": PATCHES.cp_wrap_attention_forward}[mode]
    monkeypatch.setattr(module, "eager_attention_forward", wrap(module.eager_attention_forward))
    model = patched(e.model)
    inputs = example_inputs(name)
    kwargs: dict[str, Any] = {}
    if name == "bert":
        ids = torch.as_tensor(inputs["input_ids"])
        x = model.bert.embeddings.word_embeddings(ids).detach().requires_grad_(True)
        kwargs = {"inputs_embeds": x, "attention_mask": torch.as_tensor(inputs["attention_mask"])}
    else:
        x = torch.as_tensor(inputs["pixel_values"]).double().requires_grad_(True)
        kwargs = {"pixel_values": x}
    logits = model(**kwargs).logits[0]
    target = int(logits.argmax())
    logits[target].backward()
    return (x * x.grad).detach().numpy()[0], target


@pytest.mark.parametrize("mode", ["cp", "attnlrp"])
@pytest.mark.parametrize("name", ["vit", "bert"])
def test_input_relevance_equals_lxt(name: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    want, target = lxt_relevance(name, mode, monkeypatch)
    e = exported(name)
    sample = example_inputs(name) if e.text else example_inputs(name)["pixel_values"][0]
    rel = pg.explain(e.onnx, sample, target=target, rule=mode, init="logit", backend="torch",
                     dtype="float64")
    got = rel.input.reshape(want.shape)
    scale = np.abs(want).max()
    assert scale > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(got.sum(), want.sum(), rtol=1e-4)
