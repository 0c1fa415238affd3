"""``provgraph explain-text MODEL TEXT --tokenizer tokenizer.json``: relevance per token.

The text is tokenised with the user's ``tokenizer.json`` (the ``tokenizers`` package, extra
``text``); the ids (and an all-ones attention mask) are bound to the model's graph inputs and
the word-embedding vectors are explained (:mod:`provgraph.importers.graph_inputs`). One line per
token: the token, its id and its relevance (⊕ over its embedding vector).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from provgraph.cli.options import backend_of, init_of, rule_of
from provgraph.errors import InputError

OPTIONS = ("target", "semiring", "rule", "theta", "init", "backend", "output_name")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="ONNX text classifier (graph inputs input_ids, attention_mask…)")
    p.add_argument("text", help="the text to classify and explain")
    p.add_argument("--tokenizer", required=True, help="tokenizer.json of the model")
    p.add_argument("--max-length", type=int, default=None,
                   help="pad or cut the ids to this many tokens (default: the model's length, "
                   "when it is fixed)")


def tokenize(path: str, text: str) -> tuple[list[str], list[int]]:
    """Tokens and ids of ``text`` under the tokenizer file ``path``."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise InputError(
            "explain-text needs the tokenizers package: pip install 'provgraph[text]'"
        ) from None
    if not Path(path).is_file():
        raise InputError(f"{path}: no such tokenizer file")
    try:
        tokenizer = Tokenizer.from_file(path)
    except Exception as exc:  # tokenizers raises its own exception types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: not a readable tokenizer.json: {first}") from None
    encoding = tokenizer.encode(text)
    if not encoding.ids:
        raise InputError(f"the text {text!r} gives no tokens")
    return list(encoding.tokens), list(encoding.ids)


def _fixed_length(model: str) -> int | None:
    import onnx

    proto = onnx.load(model, load_external_data=False)
    for value in proto.graph.input:
        if value.name == "input_ids":
            dims = value.type.tensor_type.shape.dim
            if len(dims) == 2 and dims[1].HasField("dim_value"):
                return int(dims[1].dim_value)
    return None


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from provgraph.api import explain

    tokens, ids = tokenize(args.tokenizer, args.text)
    length = args.max_length or _fixed_length(args.model) or len(ids)
    if len(ids) > length:
        tokens, ids = tokens[:length], ids[:length]
    mask = [1] * len(ids) + [0] * (length - len(ids))
    ids = ids + [0] * (length - len(ids))
    inputs = {"input_ids": np.array([ids], dtype=np.int64),
              "attention_mask": np.array([mask], dtype=np.int64)}
    options: dict[str, Any] = {
        "semiring": args.semiring, "rule": rule_of(args), "theta": args.theta,
        "init": init_of(args), "target": args.target, "backend": backend_of(args),
        "output": args.output_name,
    }
    start = time.perf_counter()
    rel = explain(args.model, inputs, **options)
    predicted = int(np.argmax(rel.logits))
    print(f"predicted class {predicted} (logit {rel.logits[predicted]:.4g}); explaining class "
          f"{rel.target} in the {rel.semiring.name} semiring")
    print(f"  rule: {rel.info['rule']}")
    per_token = rel.semiring.to_float(rel.tokens())
    width = max(len(t) for t in tokens)
    print(f"  {'token':<{width}}  {'id':>6}  relevance")
    for token, token_id, value in zip(tokens, ids, per_token):
        print(f"  {token:<{width}}  {token_id:>6}  {value:.6g}")
    print(f"time: {time.perf_counter() - start:.3f} s")
    return 0
