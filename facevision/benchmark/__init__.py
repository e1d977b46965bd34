"""Benchmarks against public protocols (``facevision benchmark ...``)."""
