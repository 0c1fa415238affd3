"""Every model family the tests build, in one markdown table.

For each model: the exporter, a compact histogram of its ONNX op types, the forward fidelity
(max absolute difference of provgraph's logits from onnxruntime's on the same input, and that
difference relative to the largest logit), the agreement with LXT where the tests hold an LXT
oracle (max difference of the input relevance relative to LXT's largest, ``cp`` and ``attnlrp``;
else —), and the explain time of each semiring through the public API
(``Explainer(network, semiring, rule=…).explain(x)``, backend ``auto``: scipy within its edge
budget, else torch; the median of ``--runs``
calls after one warm-up; the semiring's default rule, with ``cp`` on attention).

The models come from the test suite's own builders, read from their registries at run time, so a
builder added to one of them appears here without editing this script:

- ``tests/models.py`` ``MODELS`` (small torch CNNs, TorchScript export),
- ``tests/transformer_models.py`` ``BUILDERS`` and the (name, exporter) pairs of
  ``tests/test_transformers_models.py`` (Hugging Face, TorchScript and dynamo),
- ``tests/test_timm_models.py`` ``MODELS``, built and exported by the test's own helpers,
- ``tests/keras_models.py`` ``BUILDERS`` (tf2onnx, exported in a child process),
- ``tests/test_ml_ops.py`` ``PIPELINES`` (skl2onnx, fitted on scikit-learn's digits),
- ``tests/test_recurrent.py`` ``CASES`` (LSTM, GRU, RNN),
- ``tests/test_computed_routing.py`` ``EXPORTS`` (Expand, Where, CumSum, GatherElements).

Run: ``.venv/bin/python benchmarks/model_table.py [--only keras,bert] [--semirings real,boolean]
[--runs 3]``. ``--only`` keeps the models whose family or name contains one of the words.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from timm_import import make_torchvision_importable  # noqa: E402

import provgraph as pg  # noqa: E402
from provgraph.algebra.semirings import BUILTIN_SEMIRINGS, get_semiring  # noqa: E402
from provgraph.importers import load_onnx  # noqa: E402
from provgraph.importers.reference import onnxruntime_outputs  # noqa: E402
from provgraph.model.network import Network  # noqa: E402
from provgraph.model.trace import forward_trace  # noqa: E402

make_torchvision_importable()  # as the test suite does: timm and transformers import it


@dataclass
class Model:
    """One exported model: its ONNX bytes, the input it is explained on and, for text models,
    the graph inputs bound as constants."""

    family: str
    name: str
    exporter: str
    onnx: bytes
    sample: np.ndarray | None = None  # one sample of the input (None: text, from the inputs)
    inputs: dict[str, np.ndarray] | None = None
    lxt: Callable[[str], tuple[np.ndarray, int]] | None = None


def _quiet() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def _torch_onnx(module: torch.nn.Module, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    with _quiet():
        torch.onnx.export(module, example, buffer, dynamo=False, opset_version=17,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    return buffer.getvalue()


def cnn_models(keep: Callable[[str], bool]) -> Iterator[Model]:
    import models

    with tempfile.TemporaryDirectory() as tmp:
        for name in filter(keep, models.MODELS):
            module = models.build(name)
            path = models.export_onnx(module, Path(tmp) / f"{name}.onnx")
            x = np.random.default_rng(0).normal(size=module.input_shape).astype(np.float32)
            yield Model("torch CNN", name, "torch.onnx", path.read_bytes(), x)


def transformer_models(keep: Callable[[str], bool]) -> Iterator[Model]:
    import transformer_models as tm
    from test_transformers_models import MODELS as PAIRS

    pairs = list(PAIRS) + [(n, "torchscript") for n in tm.BUILDERS
                           if (n, "torchscript") not in PAIRS]
    oracle = _lxt_oracle()
    for name, exporter in (p for p in pairs if keep(p[0])):
        e = tm.exported(name, exporter)
        sample = None if e.text else e.inputs["pixel_values"][0]
        lxt = oracle if oracle is not None and name in _lxt_names() else None
        yield Model("transformers", name, f"torch.onnx ({exporter})", e.onnx, sample,
                    e.inputs if e.text else None, lxt)


def _lxt_names() -> set[str]:
    from test_lxt_oracle import MODULES

    return set(MODULES)


def _lxt_oracle() -> Callable[[str], Any] | None:
    try:
        import pytest
        from test_lxt_oracle import lxt_relevance
    except ImportError:
        return None

    def relevance(name: str, mode: str = "cp") -> tuple[np.ndarray, int]:
        with pytest.MonkeyPatch.context() as patch:
            return lxt_relevance(name, mode, patch)

    return relevance


def timm_models(keep: Callable[[str], bool]) -> Iterator[Model]:
    import test_timm_models as tt

    side = tt.SIDE
    for i, name in enumerate(tt.MODELS):
        if not keep(name):
            continue
        torch.manual_seed(i)
        module = tt._build(name.removesuffix(tt.DYNAMO)).eval()
        with torch.no_grad():  # random weights everywhere, as the tests draw them
            for p in module.parameters():
                p.normal_(0.0, 0.3)
        x = np.random.default_rng(0).normal(size=(3, side, side)).astype(np.float32)
        dynamo = name.endswith(tt.DYNAMO)
        exporter = "torch.onnx (dynamo)" if dynamo else "torch.onnx (torchscript)"
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_bytes = tt._export(module, name)  # the test's own export, dynamo included
        yield Model("timm", name, exporter, onnx_bytes, x)


def keras_models(keep: Callable[[str], bool]) -> Iterator[Model]:
    import keras_models as km

    with tempfile.TemporaryDirectory() as tmp:
        paths = km.export_in_child(list(filter(keep, km.BUILDERS)), Path(tmp))
        for name, path in paths.items():
            x = np.load(path.with_suffix(".npz"))["x"][0]
            yield Model("keras", name, "tf2onnx", path.read_bytes(), x)


def sklearn_models(keep: Callable[[str], bool]) -> Iterator[Model]:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from test_ml_ops import PIPELINES, _pipeline

    x, y = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    for name in filter(keep, PIPELINES):
        pipe = _pipeline(name)
        with _quiet():
            pipe.fit(x[:600], (y[:600] > 4).astype(int) if "binary" in name else y[:600])
        yield Model("scikit-learn", name, "skl2onnx", to_onnx(pipe, x[:1]).SerializeToString(),
                    x[700])


def recurrent_models(keep: Callable[[str], bool]) -> Iterator[Model]:
    from test_recurrent import CASES, FEATURES, SEQ, SequenceClassifier

    for i, (name, spec) in enumerate(CASES.items()):
        if not keep(name):
            continue
        torch.manual_seed(i)
        module = SequenceClassifier(*spec).eval()
        x = np.random.default_rng(0).normal(size=(SEQ, FEATURES)).astype(np.float32)
        yield Model("recurrent", name, "torch.onnx",
                    _torch_onnx(module, torch.randn(1, SEQ, FEATURES)), x)


def routing_models(keep: Callable[[str], bool]) -> Iterator[Model]:
    from test_computed_routing import EXPORTS, exported

    for name in filter(keep, EXPORTS):
        x = np.random.default_rng(0).normal(size=(5,)).astype(np.float32)
        yield Model("routing", name, "torch.onnx", exported(name), x)


SOURCES: dict[str, Callable[[Callable[[str], bool]], Iterator[Model]]] = {
    "cnn": cnn_models, "transformers": transformer_models, "timm": timm_models,
    "keras": keras_models, "sklearn": sklearn_models, "recurrent": recurrent_models,
    "routing": routing_models,
}


def histogram(data: bytes, top: int = 5) -> str:
    counts = Counter(n.op_type for n in onnx.load_from_string(data).graph.node)
    shown = " ".join(f"{op}×{n}" for op, n in counts.most_common(top))
    rest = len(counts) - min(top, len(counts))
    return shown + (f" +{rest} types" if rest else "")


def imported(m: Model) -> tuple[Network, np.ndarray]:
    if m.inputs is not None:
        net = load_onnx(m.onnx, inputs=m.inputs)
        return net, net.token_input.embeddings()
    return load_onnx(m.onnx), m.sample


def fidelity(m: Model, net: Network, x: np.ndarray) -> str:
    ours = np.asarray(forward_trace(net, x[None]).logits[0], dtype=np.float64)
    if m.inputs is not None:
        import onnxruntime as ort

        ref = ort.InferenceSession(m.onnx).run(None, m.inputs)[0][0]
    else:
        batch = x[None].astype(np.float32)
        ref = onnxruntime_outputs(m.onnx, batch, [net.output_name])[net.output_name][0]
    diff = float(np.abs(ours - np.asarray(ref, dtype=np.float64)).max())
    return f"{diff:.1e} ({diff / max(float(np.abs(ref).max()), 1e-30):.0e} rel.)"


def lxt_agreement(m: Model, x: np.ndarray) -> str:
    if m.lxt is None:
        return "—"
    parts = []
    for mode in ("cp", "attnlrp"):
        want, target = m.lxt(m.name, mode)
        sample = m.inputs if m.inputs is not None else x
        rel = pg.explain(m.onnx, sample, target=target, rule=mode, init="logit",
                         backend="torch", dtype="float64")
        got = np.asarray(rel.input).reshape(want.shape)
        parts.append(f"{mode} {np.abs(got - want).max() / np.abs(want).max():.0e}")
    return ", ".join(parts)


def explain_time(net: Network, x: np.ndarray, semiring: str, runs: int) -> str:
    k = get_semiring(semiring)
    rule = pg.Composite(default=k.default_rule, entries=[
        pg.Entry("MatProduct", "cp"), pg.Entry("AttentionSoftmax", "cp")])
    explainer = pg.Explainer(net, semiring, rule=rule, backend="auto")
    with _quiet():
        explainer.explain(x)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            explainer.explain(x)
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return f"{median * 1e3:.0f} ms" if median >= 0.01 else f"{median * 1e3:.1f} ms"


def row(m: Model, semirings: list[str], runs: int) -> list[str]:
    cells = [f"{m.name} (timm)" if m.family == "timm" else m.name, m.exporter, histogram(m.onnx)]
    width = len(cells) + 2 + len(semirings)
    try:
        net, x = imported(m)
        cells += [fidelity(m, net, x), lxt_agreement(m, x)]
        cells += [explain_time(net, x, s, runs) for s in semirings]
    except Exception as exc:  # a refused model is a row of the table, not the end of it
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        cells.append(f"refused: {first[:120]}")
    return (cells + ["—"] * width)[:width]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated family or model words")
    parser.add_argument("--semirings", default=",".join(BUILTIN_SEMIRINGS))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    words = [w for w in args.only.split(",") if w]
    semirings = [s for s in args.semirings.split(",") if s]
    for s in semirings:
        get_semiring(s)  # an unknown name fails here, before any export
    header = ["model", "exporter", "ONNX ops (top 5)", "ORT max abs diff", "LXT agreement"]
    header += [f"{s}" for s in semirings]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for family, source in SOURCES.items():
        def keep(name: str, family: str = family) -> bool:
            return not words or any(w in family or w in name for w in words)

        models = source(keep)
        while True:
            try:
                m = next(models)
            except StopIteration:
                break
            except Exception as exc:  # a builder or exporter that fails ends only its family
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                print(f"| {family}: not built ({first[:120]}) |" + " — |" * (len(header) - 1))
                break
            print("| " + " | ".join(row(m, semirings, args.runs)) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
