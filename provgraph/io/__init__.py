"""Input and output: reading samples, atomic writes, exports and heatmaps."""
