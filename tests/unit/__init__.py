"""Unit tests: the DSL, the tree, the plan and the step runtime; no server (Redis, broker, database)."""
