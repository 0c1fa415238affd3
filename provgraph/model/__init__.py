"""The model: a network as a DAG of typed ops over named tensors, and its forward trace."""

import warnings

# Imported weights are read-only views of the model file's bytes (no second copy of them);
# torch warns when it wraps one, although provgraph never writes through those tensors.
warnings.filterwarnings(
    "ignore", message="The given NumPy array is not writable", category=UserWarning,
    module=r"provgraph(\.|$)",
)
