"""Small Hugging Face transformers from configs (random weights), exported to ONNX once per
process: image classifiers with ``pixel_values``, text classifiers with ``input_ids`` and
``attention_mask`` (hidden 32, 2 layers, 2 heads; images 32×32 in 8×8 patches; 8 tokens)."""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

SEQ, VOCAB, SIDE = 8, 50, 32
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


@dataclass(frozen=True)
class Exported:
    """A torch model, its ONNX export and an example of its inputs (numpy, batch 1)."""

    name: str
    model: torch.nn.Module
    onnx: bytes
    inputs: dict[str, np.ndarray]
    exporter: str

    @property
    def text(self) -> bool:
        return "input_ids" in self.inputs


def _vit() -> torch.nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    return ViTForImageClassification(ViTConfig(
        image_size=SIDE, patch_size=8, num_labels=5, attn_implementation="eager", **SMALL))


def _deit() -> torch.nn.Module:
    from transformers import DeiTConfig, DeiTForImageClassification

    return DeiTForImageClassification(DeiTConfig(
        image_size=SIDE, patch_size=8, num_labels=5, attn_implementation="eager", **SMALL))


def _swin() -> torch.nn.Module:
    from transformers import SwinConfig, SwinForImageClassification

    return SwinForImageClassification(SwinConfig(
        image_size=SIDE, patch_size=4, embed_dim=16, depths=[2, 1], num_heads=[2, 2],
        window_size=4, num_labels=5, attn_implementation="eager"))


def _bert() -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(
        vocab_size=VOCAB, max_position_embeddings=16, num_labels=3, attn_implementation="eager",
        **SMALL))


def _distilbert() -> torch.nn.Module:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    return DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=VOCAB, max_position_embeddings=16, num_labels=3, dim=32, n_layers=2, n_heads=2,
        hidden_dim=64, attn_implementation="eager"))


def _roberta() -> torch.nn.Module:
    from transformers import RobertaConfig, RobertaForSequenceClassification

    return RobertaForSequenceClassification(RobertaConfig(
        vocab_size=VOCAB, max_position_embeddings=SEQ + 4, num_labels=3, pad_token_id=1,
        attn_implementation="eager", **SMALL))


BUILDERS: dict[str, Callable[[], torch.nn.Module]] = {
    "vit": _vit, "deit": _deit, "swin": _swin, "bert": _bert, "distilbert": _distilbert,
    "roberta": _roberta,
}
TEXT = {"bert", "distilbert", "roberta"}


def example_inputs(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if name in TEXT:
        ids = rng.integers(3, VOCAB, size=(1, SEQ))
        mask = np.ones((1, SEQ), dtype=np.int64)
        mask[0, SEQ - 2 :] = 0  # two padding tokens
        return {"input_ids": ids.astype(np.int64), "attention_mask": mask}
    return {"pixel_values": rng.normal(size=(1, 3, SIDE, SIDE)).astype(np.float32)}


class _Logits(torch.nn.Module):
    """The model's logits as a plain tensor output (what an exporter needs)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        names = ("input_ids", "attention_mask") if len(args) == 2 else ("pixel_values",)
        return self.model(**dict(zip(names, args))).logits


@functools.cache
def exported(name: str, exporter: str = "torchscript") -> Exported:
    torch.manual_seed(0)
    model = BUILDERS[name]().eval()
    inputs = example_inputs(name)
    args = tuple(torch.as_tensor(v) for v in inputs.values())
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            program = torch.onnx.export(_Logits(model), args, dynamo=True,
                                        input_names=list(inputs), output_names=["logits"])
            data = program.model_proto.SerializeToString()
        else:
            torch.onnx.export(_Logits(model), args, buf, dynamo=False, opset_version=17,
                              input_names=list(inputs), output_names=["logits"])
            data = buf.getvalue()
    return Exported(name, model, data, inputs, exporter)
