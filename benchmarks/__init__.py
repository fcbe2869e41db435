"""Benchmarks: Tasktronaut against hand-written canvas and plain delay() on one worker."""
