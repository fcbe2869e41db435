"""Tasktronaut test suite."""
