"""Importers: turn a model file into a provgraph Network."""
