"""A deterministic fuzzer over model bytes, graph mutations, inputs and options (see harness)."""
