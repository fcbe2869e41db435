"""Orders: fulfilling an order is a Tasktronaut process run on the Celery workers."""
