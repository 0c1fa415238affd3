"""Transformers: provgraph against LXT (AttnLRP's reference code) on the same model, one run.

Two workloads with random weights: ViT-Tiny (224×224 in 16×16 patches, 12 layers, hidden 192,
3 heads, 1,000 classes) and a BERT-base-sized encoder (12 layers, hidden 768, 12 heads,
sequence 128, 2 classes), both Hugging Face models exported with ``torch.onnx`` (TorchScript).

- **LXT**: the float32 torch model with LXT's patches (``wrap_attention_forward`` or
  ``cp_wrap_attention_forward``, ``identity_rule_implicit`` on the activations, LayerNorm with a
  detached mean and standard deviation, as in ``tests/test_lxt_oracle.py``), one forward and one
  backward of the predicted logit: gradient × input.
- **provgraph real**: ``Explainer(network, rule=…, init="logit", backend="torch").explain(x)`` on
  the imported network (float32, the API's default for the real semiring), forward trace
  included. Importing is timed apart (a text model is imported once per text).
- **provgraph K** for the other built-in semirings: the same call on the numba backend (what
  ``backend="auto"`` chooses on the CPU for a graph this size: fused kernels for the per-token
  dense layers and, under ``cp``, for the product of the attention weights and the values)
  with the semiring's default rule under ``cp`` (Counting in float64: the path counts overflow
  int64).

Times are medians of ``--runs`` calls after one warm-up, LXT's and provgraph's calls taking turns
(so that a change in the machine's load reaches both); each is also a ratio to LXT (real) or to
provgraph real (the other semirings), measured in the same run. On a machine shared with other
work, ``--threads 1`` keeps idle-waiting threads from blurring the ratios. Run:
``.venv/bin/python benchmarks/bench_transformers.py [--runs 3] [--only vit|bert]
[--semirings boolean,counting,viterbi,tropical,fuzzy]``.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numba
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from lxt_import import import_lxt
from timm_import import make_torchvision_importable

import provgraph as pg
from provgraph.backends.numba_backend import NumbaBackend
from provgraph.importers.onnx_loader import load_onnx

make_torchvision_importable()  # transformers imports torchvision, whose C extension may not load
from test_lxt_oracle import patched  # noqa: E402

SEQ = 128


def vit_tiny() -> torch.nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    return ViTForImageClassification(ViTConfig(
        image_size=224, patch_size=16, hidden_size=192, num_hidden_layers=12,
        num_attention_heads=3, intermediate_size=768, num_labels=1000,
        attn_implementation="eager"))


def bert_base() -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    return BertForSequenceClassification(BertConfig(
        num_labels=2, attn_implementation="eager"))


def median_time(fn: Callable[[], Any], runs: int) -> float:
    return median_times([fn], runs)[0]


def median_times(fns: list[Callable[[], Any]], runs: int) -> list[float]:
    """Median time of each call after one warm-up each, the calls taking turns (a change in the
    machine's load then reaches all of them alike)."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, kept in zip(fns, times):
            start = time.perf_counter()
            fn()
            kept.append(time.perf_counter() - start)
    return [statistics.median(kept) for kept in times]


def workload(name: str) -> tuple[torch.nn.Module, dict[str, np.ndarray], Any]:
    torch.manual_seed(0)
    model = (vit_tiny if name == "vit" else bert_base)().eval()
    rng = np.random.default_rng(0)
    if name == "vit":
        inputs = {"pixel_values": rng.normal(size=(1, 3, 224, 224)).astype(np.float32)}
        module = __import__("transformers.models.vit.modeling_vit", fromlist=["x"])
    else:
        inputs = {"input_ids": rng.integers(1000, 30000, size=(1, SEQ)).astype(np.int64),
                  "attention_mask": np.ones((1, SEQ), dtype=np.int64)}
        module = __import__("transformers.models.bert.modeling_bert", fromlist=["x"])
    return model, inputs, module


def export(model: torch.nn.Module, inputs: dict[str, np.ndarray]) -> bytes:
    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(inputs, args))).logits

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Logits(), tuple(torch.as_tensor(v) for v in inputs.values()), buf,
                          dynamo=False, opset_version=17, input_names=list(inputs),
                          output_names=["logits"])
    return buf.getvalue()


def lxt_call(model: torch.nn.Module, inputs: dict, module: Any, mode: str) -> Callable[[], Any]:
    _, patches = import_lxt()
    wrap = {"attnlrp": patches.wrap_attention_forward, "cp": patches.cp_wrap_attention_forward}
    original = module.eager_attention_forward
    lxt_model = patched(model).float()

    def run() -> np.ndarray:
        module.eager_attention_forward = wrap[mode](original)
        try:
            if "input_ids" in inputs:
                ids = torch.as_tensor(inputs["input_ids"])
                x = lxt_model.bert.embeddings.word_embeddings(ids).detach().requires_grad_(True)
                kwargs = {"inputs_embeds": x,
                          "attention_mask": torch.as_tensor(inputs["attention_mask"])}
            else:
                x = torch.as_tensor(inputs["pixel_values"]).requires_grad_(True)
                kwargs = {"pixel_values": x}
            logits = lxt_model(**kwargs).logits[0]
            logits[int(logits.argmax())].backward()
            return (x * x.grad).detach().numpy()
        finally:
            module.eager_attention_forward = original

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["vit", "bert"], default=None)
    parser.add_argument("--semirings", default="boolean,counting,viterbi,tropical,fuzzy")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch and numba threads (both sides)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)  # the numba backend's kernels too
    torch.set_grad_enabled(True)
    rows = []
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"torch threads {torch.get_num_threads()}, load average {load}", flush=True)
    print(f"{'model':<6} {'case':<26} {'time (s)':>10} {'ratio':>8}  to", flush=True)

    def add(name: str, case: str, t: float, ratio: float | None = None, to: str = "") -> None:
        rows.append((name, case, t, ratio, to))
        shown = f"{ratio:8.2f}" if ratio is not None else " " * 8
        print(f"{name:<6} {case:<26} {t:>10.3f} {shown}  {to}", flush=True)

    for name in ["vit", "bert"] if args.only is None else [args.only]:
        model, inputs, module = workload(name)
        data = export(model, inputs)
        start = time.perf_counter()
        net = load_onnx(data, inputs=inputs if "input_ids" in inputs else None)
        add(name, "provgraph import", time.perf_counter() - start)
        x = net.token_input.embeddings() if net.token_input else inputs["pixel_values"][0]
        real: dict[str, float] = {}
        for mode in ("cp", "attnlrp"):
            explainer = pg.Explainer(net, "real", rule=mode, init="logit", backend="torch",
                                     keep=())
            lxt, real[mode] = median_times(
                [lxt_call(model, inputs, module, mode), lambda e=explainer, x=x: e.explain(x)],
                args.runs)
            add(name, f"LXT {mode}", lxt)
            add(name, f"provgraph real {mode}", real[mode], real[mode] / lxt, "LXT")
        for semiring in [s for s in args.semirings.split(",") if s]:
            explainer = pg.Explainer(net, semiring, backend=NumbaBackend(counting="float64"),
                                     keep=())
            t = median_time(lambda e=explainer, x=x: e.explain(x), max(1, args.runs // 2))
            add(name, f"provgraph {semiring} cp", t, t / real["cp"], "real cp")


if __name__ == "__main__":
    main()
