"""Evaluation: generation with a KV cache, benchmarks, judges."""
