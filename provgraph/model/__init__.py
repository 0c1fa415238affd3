"""The model: a network as a DAG of typed ops over named tensors, and its forward trace."""
