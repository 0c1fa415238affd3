"""timm classifiers with random weights and small configurations, exported with torch.onnx:
ConvNeXt, ConvNeXt-V2 (GRN), MLP-Mixer and PoolFormer (pooling token mixer ``pool(x) − x``).

Oracles: onnxruntime (forward, ≤ 1e-4 relative), and every built-in semiring on both backends
with finite results that agree with the scipy reference.
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

from provgraph.engine.annotation import AnnotatedGraph
from provgraph.importers import load_onnx
from provgraph.importers.reference import onnxruntime_outputs
from provgraph.model.trace import forward_trace

SIDE, CLASSES = 32, 5
STAGES = {"depths": (1, 1, 1, 1), "dims": (8, 16, 24, 32), "num_classes": CLASSES}


def _build(name: str) -> torch.nn.Module:
    timm = import_timm()
    if name == "convnext":
        return timm.create_model("convnext_atto", pretrained=False, **STAGES)
    if name == "convnextv2":
        return timm.create_model("convnextv2_atto", pretrained=False, **STAGES)
    if name == "mixer":
        from timm.models.mlp_mixer import MlpMixer

        return MlpMixer(num_classes=CLASSES, img_size=SIDE, patch_size=8, num_blocks=2,
                        embed_dim=16)
    from timm.models.metaformer import GroupNorm1, MetaFormer, Pooling

    # PoolFormer (Yu et al., CVPR 2022): pooling token mixer, GroupNorm with one group, GELU
    return MetaFormer(token_mixers=Pooling, norm_layers=GroupNorm1, downsample_norm=None,
                      layer_scale_init_values=1e-5, res_scale_init_values=None,
                      use_mlp_head=False, mlp_act=torch.nn.GELU, **STAGES)


MODELS = ["convnext", "convnextv2", "mixer", "poolformer"]


@pytest.fixture(scope="session")
def timm_onnx() -> dict[str, bytes]:
    out = {}
    for i, name in enumerate(MODELS):
        torch.manual_seed(i)
        module = _build(name).eval()
        with torch.no_grad():  # random weights everywhere (timm zero-initialises some heads)
            for p in module.parameters():
                p.normal_(0.0, 0.3)
        buffer = io.BytesIO()
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, torch.randn(1, 3, SIDE, SIDE), buffer, dynamo=False,
                              opset_version=17, input_names=["x"],
                              dynamic_axes={"x": {0: "batch"}})
        out[name] = buffer.getvalue()
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
