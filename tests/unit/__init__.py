"""Unit tests: the DSL, the tree and the step runtime, without a broker."""
