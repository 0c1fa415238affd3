"""Applications built on explanations: the demo, model inspection, ranking and summaries."""
