"""Run store tests: the store contract on memory, Redis, SQLAlchemy and Django, on real servers."""
