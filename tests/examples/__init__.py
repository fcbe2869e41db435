"""Tests of the example projects: each run as its users would, with real workers."""
