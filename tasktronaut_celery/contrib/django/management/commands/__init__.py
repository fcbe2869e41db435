"""``manage.py tasktronaut``."""
