"""timm classifiers with random weights and small configurations, exported with torch.onnx:
ConvNeXt, ConvNeXt-V2 (GRN), MLP-Mixer, PoolFormer (pooling token mixer ``pool(x) − x``), ViT
and DeiT (whose attention permutes the batch axis away and back, ``qkv.permute(2, 0, 3, 1, 4)``)
and MobileViT (which folds its patches into the batch axis around each transformer); the ViT
also from the dynamo exporter.

Oracles: onnxruntime (forward, ≤ 1e-4 relative, on a batch of two), every built-in semiring on
every CPU backend with finite results that agree with the scipy reference, and conservation
under ``cp`` and ``attnlrp`` for the transformers.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pytest
import torch
from backend_lists import check_every_semiring_on_every_backend
from timm_import import import_timm

import provgraph as pg
from provgraph.algebra.semirings import BUILTIN_SEMIRINGS, get_semiring
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.importers import load_onnx
from provgraph.importers.reference import onnxruntime_outputs
from provgraph.model.trace import forward_trace

SIDE, CLASSES = 32, 5
STAGES = {"depths": (1, 1, 1, 1), "dims": (8, 16, 24, 32), "num_classes": CLASSES}
VIT = {"pretrained": False, "img_size": SIDE, "patch_size": 8, "embed_dim": 32, "depth": 2,
       "num_heads": 2, "num_classes": CLASSES}


def _mobilevit() -> torch.nn.Module:
    """``mobilevit_xxs`` (Mehta and Rastegari, ICLR 2022) with fewer and narrower blocks: two
    inverted residuals, then two MobileViT blocks (patches 2×2 unfolded into the batch axis, one
    transformer layer of width 16 each)."""
    import_timm()
    from timm.models.byobnet import ByobNet, ByoModelCfg
    from timm.models.mobilevit import _inverted_residual_block, _mobilevit_block

    blocks = (
        _inverted_residual_block(d=1, c=8, s=1, br=2.0),
        _inverted_residual_block(d=1, c=8, s=2, br=2.0),
        _mobilevit_block(d=1, c=16, s=2, transformer_dim=16, transformer_depth=1,
                         patch_size=2, br=2.0),
        _mobilevit_block(d=1, c=16, s=2, transformer_dim=16, transformer_depth=1,
                         patch_size=2, br=2.0),
    )
    cfg = ByoModelCfg(blocks=blocks, stem_chs=8, stem_type="3x3", stem_pool="", downsample="",
                      act_layer="silu", num_features=32)
    return ByobNet(cfg, num_classes=CLASSES)


def _build(name: str) -> torch.nn.Module:
    timm = import_timm()
    if name == "convnext":
        return timm.create_model("convnext_atto", pretrained=False, **STAGES)
    if name == "convnextv2":
        return timm.create_model("convnextv2_atto", pretrained=False, **STAGES)
    if name == "vit":
        return timm.create_model("vit_tiny_patch16_224", **VIT)
    if name == "deit":
        return timm.create_model("deit_tiny_patch16_224", **VIT)
    if name == "mobilevit":
        return _mobilevit()
    if name == "mixer":
        from timm.models.mlp_mixer import MlpMixer

        return MlpMixer(num_classes=CLASSES, img_size=SIDE, patch_size=8, num_blocks=2,
                        embed_dim=16)
    from timm.models.metaformer import GroupNorm1, MetaFormer, Pooling

    # PoolFormer (Yu et al., CVPR 2022): pooling token mixer, GroupNorm with one group, GELU
    return MetaFormer(token_mixers=Pooling, norm_layers=GroupNorm1, downsample_norm=None,
                      layer_scale_init_values=1e-5, res_scale_init_values=None,
                      use_mlp_head=False, mlp_act=torch.nn.GELU, **STAGES)


MODELS = ["convnext", "convnextv2", "mixer", "poolformer", "vit", "deit", "mobilevit",
          "vit-dynamo"]
TRANSFORMERS = ["vit", "deit", "mobilevit", "vit-dynamo"]
DYNAMO = "-dynamo"


def _export(module: torch.nn.Module, name: str) -> bytes:
    """TorchScript export at opset 17, or (``…-dynamo``) the dynamo exporter; batch dynamic."""
    if name.endswith(DYNAMO):
        batch = torch.export.Dim("batch")
        program = torch.onnx.export(module, (torch.randn(2, 3, SIDE, SIDE),), dynamo=True,
                                    input_names=["x"], dynamic_shapes={"x": {0: batch}})
        return program.model_proto.SerializeToString()
    buffer = io.BytesIO()
    torch.onnx.export(module, torch.randn(1, 3, SIDE, SIDE), buffer, dynamo=False,
                      opset_version=17, input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    return buffer.getvalue()


@pytest.fixture(scope="session")
def timm_onnx() -> dict[str, bytes]:
    out = {}
    for i, name in enumerate(MODELS):
        torch.manual_seed(i)
        module = _build(name.removesuffix(DYNAMO)).eval()
        with torch.no_grad():  # random weights everywhere (timm zero-initialises some heads)
            for p in module.parameters():
                p.normal_(0.0, 0.3)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            out[name] = _export(module, name)
    return out


@pytest.mark.parametrize("name", MODELS)
def test_forward_equals_onnxruntime(timm_onnx, name: str) -> None:
    net = load_onnx(timm_onnx[name])
    x = np.random.default_rng(0).normal(size=(2, 3, SIDE, SIDE)).astype(np.float32)
    ours = forward_trace(net, x).logits
    ref = onnxruntime_outputs(timm_onnx[name], x, [net.output_name])[net.output_name]
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("name", MODELS)
def test_every_semiring_on_every_backend(timm_onnx, name: str) -> None:
    net = load_onnx(timm_onnx[name])
    x = np.random.default_rng(1).normal(size=(1, 3, SIDE, SIDE)).astype(np.float32)
    graph = AnnotatedGraph(net, forward_trace(net, x))
    check_every_semiring_on_every_backend(graph, [0, 3], rtol=1e-7, atol=1e-10,
                                          atol_of_largest=True)


def _graph(timm_onnx: dict[str, bytes], name: str) -> AnnotatedGraph:
    net = load_onnx(timm_onnx[name])
    x = np.random.default_rng(2).normal(size=(1, 3, SIDE, SIDE)).astype(np.float32)
    return AnnotatedGraph(net, forward_trace(net, x))


@pytest.mark.parametrize("name", TRANSFORMERS)
@pytest.mark.parametrize("rule", ["cp", "attnlrp"])
def test_transformer_explained_in_every_semiring(timm_onnx, name: str, rule: str) -> None:
    """Each semiring's default rule, with the attention treatment asked: no NaN, relevance
    reaches the input, and every value is finite or K's zero."""
    graph = _graph(timm_onnx, name)
    for semiring in BUILTIN_SEMIRINGS:
        k = get_semiring(semiring)
        composite = pg.Composite(default=k.default_rule, entries=[
            pg.Entry("MatProduct", rule), pg.Entry("AttentionSoftmax", rule)])
        values = np.asarray(graph.aggregate(k, rule=composite, backend="torch").input,
                            dtype=np.float64)
        zero = float(k.zero)
        assert not np.isnan(values).any(), semiring
        assert (np.isfinite(values) | (values == zero)).all(), semiring
        assert (values != zero).any(), f"{semiring}: no relevance reaches the input"


@pytest.mark.parametrize("name", TRANSFORMERS)
@pytest.mark.parametrize("rule", ["cp", "attnlrp"])
def test_transformer_conservation(timm_onnx, name: str, rule: str) -> None:
    """LRP-0 from the logit: input plus bias relevance is the logit."""
    graph = _graph(timm_onnx, name)
    rel = graph.aggregate("real", rule=rule, init="logit", backend="torch")
    total = rel.input.sum() + sum(float(np.sum(v)) for v in rel.biases.values())
    assert total == pytest.approx(graph.logits[graph.predicted_class], rel=1e-6)
