"""Objective metrics for generated music (pure numpy/scipy, no TensorFlow)."""
