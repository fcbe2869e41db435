"""Fast tests on the embedded backend: in-process app, memory transport, thread pool."""
