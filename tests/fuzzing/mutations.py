"""Mutation families: each turns a valid seed into one fuzz case, deterministically from an RNG.

A family returns a :class:`Case`: the model as bytes (or a file path for external data), the
input, the options of the explanation, and a short description for reports.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from seeds import Seed

BAD_FLOATS = [float("nan"), float("inf"), float("-inf"), 0.0, -1.0, 1e308, 1e-45, 1e39, 2.5]
BAD_INTS = [0, -1, 1, 2, 3, 7, -(10**6), 10**6, 2**40, -(2**62)]
OP_TYPES = ["Relu", "Sigmoid", "Add", "Mul", "Conv", "Gemm", "MatMul", "MaxPool", "Flatten",
            "Reshape", "Transpose", "Concat", "Softmax", "Identity", "BatchNormalization",
            "AveragePool", "GlobalAveragePool", "Pad", "Slice", "LayerNormalization", "If", "Foo"]


@dataclass
class Case:
    family: str
    description: str
    model: bytes | Path
    x: Any
    options: dict[str, Any] = field(default_factory=dict)
    #: whether onnxruntime must agree on the logits if both it and provgraph accept the case
    compare: bool = True
    #: the case has no meaningful explanation: it must be refused
    must_refuse: bool = False


def _bytes(model: onnx.ModelProto) -> bytes:
    return model.SerializeToString()


# --- families ------------------------------------------------------------------------------------


def mutate_bytes(seed: Seed, rng: np.random.Generator, folder: Path) -> Case:
    data = bytearray(_bytes(seed.model))
    kind = rng.choice(["flip", "truncate", "insert", "zero"])
    if kind == "flip":
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(len(data)))
            data[i] ^= 1 << int(rng.integers(8))
    elif kind == "truncate":
        data = data[: int(rng.integers(len(data)))]
    elif kind == "insert":
        i = int(rng.integers(len(data)))
        data[i:i] = rng.bytes(int(rng.integers(1, 32)))
    else:
        i = int(rng.integers(len(data)))
        data[i : i + int(rng.integers(1, 16))] = b"\x00" * 4
    return Case("bytes", kind, bytes(data), seed.sample(rng))


def mutate_graph(seed: Seed, rng: np.random.Generator, folder: Path) -> Case:
    model = copy.deepcopy(seed.model)
    nodes = model.graph.node
    i = int(rng.integers(len(nodes)))
    kind = rng.choice(["remove", "rewire", "op_type", "duplicate", "drop_output", "self_loop"])
    tensors = [t for n in nodes for t in n.output] + [t.name for t in model.graph.initializer]
    if kind == "remove":
        del nodes[i]
    elif kind == "rewire" and len(nodes[i].input):
        j = int(rng.integers(len(nodes[i].input)))
        nodes[i].input[j] = str(rng.choice(tensors + ["missing_tensor", ""]))
    elif kind == "op_type":
        nodes[i].op_type = str(rng.choice(OP_TYPES))
    elif kind == "duplicate":
        nodes.insert(i, copy.deepcopy(nodes[i]))
    elif kind == "drop_output":
        del model.graph.output[:]
    elif kind == "self_loop" and len(nodes[i].input):
        nodes[i].input[0] = nodes[i].output[0]
    return Case("graph", f"{kind} node {i}", _bytes(model), seed.sample(rng))


def mutate_attribute(seed: Seed, rng: np.random.Generator, folder: Path) -> Case:
    model = copy.deepcopy(seed.model)
    with_attrs = [n for n in model.graph.node if len(n.attribute)]
    if not with_attrs:
        return mutate_graph(seed, rng, folder)
    node = with_attrs[int(rng.integers(len(with_attrs)))]
    attr = node.attribute[int(rng.integers(len(node.attribute)))]
    kind = attr.type
    if kind == onnx.AttributeProto.INT:
        attr.i = int(rng.choice(BAD_INTS))
    elif kind == onnx.AttributeProto.FLOAT:
        attr.f = float(rng.choice(BAD_FLOATS))
    elif kind == onnx.AttributeProto.INTS:
        n = int(rng.integers(0, len(attr.ints) + 3))
        values = [int(rng.choice(BAD_INTS)) for _ in range(n)]
        del attr.ints[:]
        attr.ints.extend(values)
    elif kind == onnx.AttributeProto.FLOATS:
        values = [float(rng.choice(BAD_FLOATS)) for _ in range(max(1, len(attr.floats)))]
        del attr.floats[:]
        attr.floats.extend(values)
    elif kind == onnx.AttributeProto.STRING:
        attr.s = str(rng.choice(["", "SAME_UPPER", "VALID", "bogus", "NOTSET"])).encode()
    elif kind == onnx.AttributeProto.TENSOR:
        values = numpy_helper.to_array(attr.t).astype(np.float64, copy=True)
        if values.size:
            values.reshape(-1)[int(rng.integers(values.size))] = float(rng.choice(BAD_FLOATS))
        attr.t.CopyFrom(numpy_helper.from_array(values.astype(np.float32), attr.t.name))
    return Case("attributes", f"{node.op_type}.{attr.name}", _bytes(model), seed.sample(rng))


def mutate_initializer(seed: Seed, rng: np.random.Generator, folder: Path) -> Case:
    model = copy.deepcopy(seed.model)
    inits = model.graph.initializer
    if not len(inits):
        return mutate_graph(seed, rng, folder)
    tensor = inits[int(rng.integers(len(inits)))]
    kind = rng.choice(["value", "dims", "data_type", "raw", "empty"])
    if kind == "value" and tensor.data_type == TensorProto.FLOAT:
        values = numpy_helper.to_array(tensor).copy()
        if values.size:
            values.reshape(-1)[int(rng.integers(values.size))] = float(rng.choice(BAD_FLOATS))
        tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    elif kind == "dims" and len(tensor.dims):
        dims = list(tensor.dims)
        dims[int(rng.integers(len(dims)))] = int(rng.choice([0, 1, 2, 3, 5, 2**31]))
        del tensor.dims[:]
        tensor.dims.extend(dims)
    elif kind == "data_type":
        tensor.data_type = int(rng.choice([0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 14, 16, 17, 21, 22, 99]))
    elif kind == "raw" and tensor.raw_data:
        tensor.raw_data = tensor.raw_data[: int(rng.integers(len(tensor.raw_data)))]
    else:
        del tensor.dims[:]
        tensor.raw_data = b""
    return Case("initializers", f"{kind} of {tensor.name}", _bytes(model), seed.sample(rng))


def mutate_opset(seed: Seed, rng: np.random.Generator, folder: Path) -> Case:
    model = copy.deepcopy(seed.model)
    kind = rng.choice(["version", "domain", "ir"])
    if kind == "version":
        for entry in model.opset_import:
            if entry.domain in ("", "ai.onnx"):
                entry.version = int(rng.integers(1, 30))
    elif kind == "domain":
        node = model.graph.node[int(rng.integers(len(model.graph.node)))]
        node.domain = str(rng.choice(["com.microsoft", "custom.domain", "ai.onnx.ml"]))
    else:
        model.ir_version = int(rng.choice([0, 1, 3, 11, 99]))
    return Case("opset", str(kind), _bytes(model), seed.sample(rng))


def mutate_external_data(seed: Seed, rng: np.random.Generator, folder: Path) -> Case:
    from onnx import external_data_helper

    model = copy.deepcopy(seed.model)
    case_dir = folder / f"ext{int(rng.integers(1 << 30))}"
    case_dir.mkdir(parents=True)
    path = case_dir / "model.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.data", size_threshold=0)
    data = case_dir / "weights.data"
    kind = rng.choice(["truncate", "offset", "length", "location", "delete", "garbage"])
    if not data.exists():  # no initializer held raw data: nothing went to the external file
        return Case("external", "no external data", path, seed.sample(rng))
    if kind == "truncate":
        data.write_bytes(data.read_bytes()[: int(rng.integers(data.stat().st_size))])
    elif kind == "delete":
        data.unlink()
    elif kind == "garbage":
        data.write_bytes(rng.bytes(data.stat().st_size))
    else:
        proto = onnx.load(str(path), load_external_data=False)
        tensors = [t for t in proto.graph.initializer
                   if external_data_helper.uses_external_data(t)]
        if not tensors:
            return Case("external", "no external data", path, seed.sample(rng))
        tensor = tensors[int(rng.integers(len(tensors)))]
        value = {
            "offset": str(int(rng.choice([-1, 10**12, 3, 1 << 40]))),
            "length": str(int(rng.choice([-5, 0, 1, 10**12]))),
            "location": str(rng.choice(["../x.data", "/etc/passwd", "w\x00.data", "a" * 300,
                                        "missing.data", ""])),
        }[str(kind)]
        entries = {e.key: e for e in tensor.external_data}
        if kind in entries:
            entries[str(kind)].value = value
        else:
            tensor.external_data.add(key=str(kind), value=value)
        onnx.save_model(proto, str(path))
    return Case("external", str(kind), path, seed.sample(rng))


def mutate_input(seed: Seed, rng: np.random.Generator, folder: Path) -> Case:
    import torch

    x = seed.sample(rng)
    kind = str(rng.choice(["nan", "inf", "huge", "shape", "empty", "scalar", "int", "uint8",
                           "bool", "complex", "object", "list", "string", "torch64", "torchint",
                           "meta", "sparse", "batch"]))
    makers: dict[str, Callable[[], Any]] = {
        "nan": lambda: np.where(rng.random(x.shape) < 0.1, np.nan, x),
        "inf": lambda: np.where(rng.random(x.shape) < 0.1, np.inf, x),
        "huge": lambda: x * np.float32(3e38),
        "shape": lambda: rng.random(x.size + int(rng.integers(1, 5))).astype(np.float32),
        "empty": lambda: np.zeros((0,) + x.shape, np.float32),
        "scalar": lambda: np.float32(0.5),
        "int": lambda: (x * 10).astype(np.int64),
        "uint8": lambda: (x * 255).astype(np.uint8),
        "bool": lambda: x > 0.5,
        "complex": lambda: x.astype(np.complex64) + 1j,
        "object": lambda: x.astype(object),
        "list": lambda: x.tolist(),
        "string": lambda: "not an array",
        "torch64": lambda: torch.from_numpy(x.astype(np.float64)),
        "torchint": lambda: torch.from_numpy((x * 10).astype(np.int64)),
        "meta": lambda: torch.empty(x.shape, device="meta"),
        "sparse": lambda: torch.from_numpy(x.reshape(1, -1)).to_sparse(),
        "batch": lambda: np.stack([x, x]),
    }
    meaningless = kind in ("complex", "string", "meta", "empty")
    return Case("inputs", kind, _bytes(seed.model), makers[kind](), compare=False,
                must_refuse=meaningless)


RULES = ["epsilon:nan", "gamma:nan", "zb:nan", "epsilon:-0.1", "epsilon:inf", "gamma:-2",
         "epsilon:0.01", "gamma:0.25", "lrp0", "maxnorm", "flat", "wsquare", "zb", "nope",
         "epsilon:abc", "", None]
THETAS = [float("nan"), -1.0, 0.0, 1e-9, 1e9, "neglog", "one", "identity", "abc", None,
          float("inf")]
SEMIRINGS = ["real", "boolean", "counting", "viterbi", "tropical", "fuzzy", "nope", ""]
BACKENDS = ["auto", "scipy", "torch", "scipy:cpu", "torch:cpu", "nope", "torch:cuda", None]


def mutate_options(seed: Seed, rng: np.random.Generator, folder: Path) -> Case:
    n = seed.num_classes
    options: dict[str, Any] = {}
    choices: dict[str, Callable[[], Any]] = {
        "semiring": lambda: rng.choice(SEMIRINGS),
        "rule": lambda: RULES[int(rng.integers(len(RULES)))],
        "theta": lambda: THETAS[int(rng.integers(len(THETAS)))],
        "backend": lambda: BACKENDS[int(rng.integers(len(BACKENDS)))],
        "target": lambda: [
            -1, n, 0, n - 1, np.array(1), np.int64(2), [], [0, 1], [0, n], 1.5, True, "3", None,
            np.array([0, 1]), float("nan"),
        ][int(rng.integers(15))],
        "init": lambda: [
            "one", "logit", "nope", [float("nan")] * n, ["a"] * n, np.ones(n), np.ones(n + 1),
            np.full(n, np.inf), [],
        ][int(rng.integers(9))],
    }
    for key in rng.choice(list(choices), size=int(rng.integers(1, 4)), replace=False):
        value = choices[str(key)]()
        options[str(key)] = value.item() if isinstance(value, np.str_) else value
    described = ", ".join(f"{k}={v!r}"[:40] for k, v in options.items())
    return Case("options", described, _bytes(seed.model), seed.sample(rng), options, compare=False)


FAMILIES: dict[str, Callable[[Seed, np.random.Generator, Path], Case]] = {
    "bytes": mutate_bytes,
    "graph": mutate_graph,
    "attributes": mutate_attribute,
    "initializers": mutate_initializer,
    "opset": mutate_opset,
    "external": mutate_external_data,
    "inputs": mutate_input,
    "options": mutate_options,
}


def make_case(seeds: tuple[Seed, ...], index: int, base_seed: int, folder: Path) -> Case:
    """Case ``index`` of the run seeded ``base_seed``: family and seed model in rotation."""
    rng = np.random.default_rng([base_seed, index])
    family = list(FAMILIES)[index % len(FAMILIES)]
    seed = seeds[(index // len(FAMILIES)) % len(seeds)]
    with np.errstate(over="ignore", invalid="ignore"):  # mutations overflow on purpose
        case = FAMILIES[family](seed, rng, folder)
    case.description = f"#{index} {seed.name}: {case.description}"
    return case


__all__ = ["FAMILIES", "Case", "make_case", "helper"]
