"""Why each ONNX op without a converter is not imported when the graph computes its inputs.

:mod:`~provgraph.importers.op_table` decides every op of the ONNX schemas: *supported* (a
converter is registered: :mod:`~provgraph.importers.registry`), *folded* (no converter, but
evaluated to a constant when all its inputs are constants: :mod:`~provgraph.importers.folding`),
or *refused* (neither). This module holds the reasons, grouped, and the provenance semantics of
each converter family, so that the table can say what every op means for a provenance graph.
"""

from __future__ import annotations

#: reason → ops; an op without a converter whose inputs the graph computes is refused for it
REASONS: dict[str, tuple[str, ...]] = {
    "stripped after the logits when it is the classifier head; inside the network it needs an "
    "attention rule": ("Softmax", "LogSoftmax", "Hardmax"),
    "integer or Boolean result (an index, a comparison, a mask): no relevance flows through it; "
    "ArgMax is stripped in the head": (
        "ArgMax", "ArgMin", "TopK", "NonZero", "Unique", "Equal", "Greater", "GreaterOrEqual",
        "Less", "LessOrEqual", "And", "Or", "Xor", "Not", "IsNaN", "IsInf", "BitShift",
        "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "Sign", "Round", "Floor",
        "Ceil", "OneHot", "NonMaxSuppression", "BitCast",
    ),
    "reads only shapes or constants: folded wherever it appears": (
        "Constant", "ConstantOfShape", "Shape", "Size", "Range", "EyeLike", "CastLike",
        "HannWindow", "HammingWindow", "BlackmanWindow", "MelWeightMatrix",
    ),
    "indexing, masking and broadcasting ops (embedding lookups, CLS-token selection, attention "
    "masks): no converter yet": (
        "Gather", "GatherND", "Tile", "CumProd",
        "Compress", "Trilu", "Scatter", "ScatterElements", "ScatterND", "TensorScatter",
        "ReverseSequence",
    ),
    "attention and fused transformer blocks: no converter yet (they need a rule for products "
    "of computed tensors)": (
        "Attention", "LinearAttention", "RotaryEmbedding", "SwiGLU", "FlexAttention",
    ),
    "an elementwise function that is not a monotone activation: no relevance rule defined": (
        "Abs", "Neg", "Exp", "Log", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh",
        "Cosh", "Asinh", "Acosh", "Atanh", "Mod", "Shrink", "Softsign", "ThresholdedRelu",
        "Celu", "Mish", "Swish",
    ),
    "a combination of several computed tensors without a converter yet (Sum and Mean would be "
    "linear, Max and Min winner-takes-all)": ("Sum", "Mean", "Max", "Min"),
    "a reduction without a relevance rule (products, logarithms, minima, L1 norms)": (
        "ReduceProd", "ReduceLogSum", "ReduceLogSumExp", "ReduceMin", "ReduceL1",
        "ReduceSumSquare",
    ),
    "a normalisation or pooling form without a converter yet": (
        "LpNormalization", "MeanVarianceNormalization", "RMSNormalization", "LpPool",
        "GlobalLpPool", "MaxUnpool",
    ),
    "resampling, spatial rearrangement or geometric ops: no converter yet": (
        "Resize", "Upsample", "GridSample", "AffineGrid", "RoiAlign", "MaxRoiPool",
        "CenterCropPad", "Col2Im", "DepthToSpace", "SpaceToDepth", "ConvTranspose",
        "DeformConv", "CausalConvWithState",
    ),
    "quantised (integer) arithmetic: a dequantised constant weight folds, quantised "
    "activations are refused": (
        "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
        "QLinearMatMul", "ConvInteger", "MatMulInteger",
    ),
    "complex-valued spectra or matrix functions: no real-valued provenance graph": (
        "DFT", "STFT", "Det",
    ),
    "a training loss, not part of a classifier's forward pass": (
        "NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss",
    ),
    "sequence, optional, string or image-file values: not float tensors": (
        "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
        "SequenceLength", "SplitToSequence", "ConcatFromSequence", "Optional",
        "OptionalGetElement", "OptionalHasElement", "StringConcat", "StringNormalizer",
        "StringSplit", "RegexFullMatch", "TfIdfVectorizer", "ImageDecoder",
    ),
    "ONNX-ML feature encoders and map types: categorical or dictionary values, not float "
    "tensors (ZipMap and ArrayFeatureExtractor are stripped in the head)": (
        "ArrayFeatureExtractor", "ZipMap", "CastMap", "CategoryMapper", "DictVectorizer",
        "LabelEncoder", "OneHotEncoder", "FeatureVectorizer", "Imputer", "Binarizer",
    ),
    "tree ensembles and kernel SVMs: piecewise-constant or kernel scores with no per-feature "
    "linear paths": (
        "TreeEnsemble", "TreeEnsembleClassifier", "TreeEnsembleRegressor", "SVMClassifier",
        "SVMRegressor",
    ),
    "a regressor, not a classifier: no class scores to explain": ("LinearRegressor",),
}

#: why an op is refused even when its inputs are constants (it cannot be folded)
NOT_FOLDED: dict[str, tuple[str, ...]] = {
    "control flow with subgraphs: no static provenance graph": (
        "If", "Loop", "Scan", "SequenceMap",
    ),
    "random sampling: no deterministic forward pass": (
        "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial",
        "Bernoulli",
    ),
    "training ops (optimisers, gradients)": ("Adagrad", "Adam", "Gradient", "Momentum"),
}

#: provenance semantics of each supported op, as groups (semantics → ops)
_SEMANTICS_GROUPS: dict[str, tuple[str, ...]] = {
    "passthrough: one edge `k → k` annotated one": (
        "Relu", "LeakyRelu", "PRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh",
        "Elu", "Selu", "Gelu", "FastGelu", "Softplus", "Erf",
    ),
    "passthrough: one edge `k → k` (the neighbouring channels only rescale)": ("LRN",),
    "linear (Dense), per token/position on rank ≥ 3; the bias a source": (
        "Gemm", "MatMul", "Einsum",
    ),
    "linear: the rule's weights over each window (1-d to 3-d)": ("Conv",),
    "linear: weights `1/n` over each window": ("AveragePool", "GlobalAveragePool"),
    "linear: weights `1/n` (`1` for the sum) over the reduced axes": ("ReduceMean", "ReduceSum"),
    "identity rule: `‖x‖ = Σ_k (x_k/‖x‖) x_k`, the norm a constant of the sample, then a sum": (
        "ReduceL2",
    ),
    "select: one edge from the arg-max of each window (1-d and 2-d)": (
        "MaxPool", "GlobalMaxPool",
    ),
    "select: one edge from the arg-max over the reduced axes (any axes)": ("ReduceMax",),
    "by a constant: affine, folded into the op before it or an Affine whose constant part is "
    "a bias source; of two computed tensors: Add residual (linear, weights 1), Sub the Add of "
    "`a` and `−b`, Mul a gate and Div a quotient (relevance follows the signal; `x * x` also "
    "the square of a normalisation)":
    ("Add", "Sub", "Mul", "Div"),
    "affine with constant statistics: folded into the Conv/Dense before it, else an Affine": (
        "BatchNormalization",
    ),
    "identity rule: linear 1-to-1 with the sample's statistics as constants, the shift a bias "
    "source": ("LayerNormalization", "InstanceNormalization", "GroupNormalization"),
    "part of a written-out normalisation (a statistic of the sample, which gets no relevance)": (
        "Pow", "Sqrt", "Reciprocal",
    ),
    "route: output `k` reads one input element, annotated one": (
        "Transpose", "Concat", "Split", "Slice", "Reshape", "Flatten", "Squeeze", "Unsqueeze",
        "Identity", "Dropout", "Cast",
    ),
    "route (zero, reflect, edge, wrap); zero padding before Conv/AveragePool merged into it": (
        "Pad",
    ),
    "route: a broadcast, each input element read by every output it is copied to (its "
    "relevance the ⊕ over the copies)": ("Expand",),
    "route by constant indices along an axis, annotated one": ("GatherElements",),
    "with a constant condition: of two computed tensors a route (each output copies one of "
    "them); of a computed tensor and a constant, linear: weight 1 where chosen, the constant a "
    "bias source elsewhere": ("Where",),
    "linear: weights 1 from every input the running sum contains (exclusive, reverse)": (
        "CumSum",
    ),
    "unrolled; rule of Arras et al. 2017: gates constant multipliers, relevance along the "
    "signal and cell path": ("LSTM", "GRU", "RNN"),
    "affine `(x − offset) · scale`; the constant part a bias source": ("Scaler",),
    "identity rule: `x / ‖x‖` with the norm a constant of the sample (one edge `k → k`)": (
        "Normalizer",
    ),
    "linear: the raw class scores `x Wᵀ + b` (the post-transform stripped as a head)": (
        "LinearClassifier",
    ),
}
#: provenance semantics of each supported op type
OP_SEMANTICS: dict[str, str] = {
    op: text for text, ops in _SEMANTICS_GROUPS.items() for op in ops
}
