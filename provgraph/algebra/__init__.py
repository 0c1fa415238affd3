"""The LRP algebra: semirings, edge-weight rules, Θ conversions and composites."""
