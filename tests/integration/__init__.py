"""Integration tests: real workers on real Redis and RabbitMQ brokers."""
