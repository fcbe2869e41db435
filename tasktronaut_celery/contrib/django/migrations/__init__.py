"""Migrations of the Tasktronaut Django app."""
