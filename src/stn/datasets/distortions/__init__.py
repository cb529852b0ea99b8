"""Distortions of a source dataset, one module each, named in the registry."""
