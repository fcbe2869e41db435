"""Runnable examples for Tasktronaut."""
