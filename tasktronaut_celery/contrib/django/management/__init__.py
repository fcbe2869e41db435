"""Django management commands of Tasktronaut."""
