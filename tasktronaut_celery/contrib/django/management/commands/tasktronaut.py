"""``manage.py tasktronaut``: the ``tasktronaut`` command with the project's settings and app.

``manage.py tasktronaut runs --state failed`` is ``tasktronaut runs --app proj
--state failed`` run with the project's settings: the Celery app is found the
way ``celery -A proj`` finds it, in the package of ``DJANGO_SETTINGS_MODULE``
(or named by the ``TASKTRONAUT_CELERY_APP`` setting, such as
``"proj.celery:app"``), unless ``--app`` is given.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tasktronaut_celery.cli import main

from ...project import project_app

# The subcommands that act on runs of an app, and so take --app.
_ON_AN_APP = frozenset({"run", "runs", "status", "cancel", "retry", "prune", "graph"})


class Command(BaseCommand):
    """Hands its arguments to the ``tasktronaut`` command, adding the project's ``--app``."""

    help = (
        "Run, list, follow, cancel, resume, prune and draw Tasktronaut runs on this "
        "project's Celery app: manage.py tasktronaut COMMAND --help for each."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Everything after ``tasktronaut`` goes to the command as it is."""
        parser.add_argument("arguments", nargs=argparse.REMAINDER, help="as for tasktronaut")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the ``tasktronaut`` command; its exit status is the process's (SystemExit)."""
        arguments = list(options["arguments"])
        if arguments and arguments[0] in _ON_AN_APP and not _names_an_app(arguments):
            arguments += ["--app", project_app()]
        main.main(args=arguments, prog_name="manage.py tasktronaut")


def _names_an_app(arguments: list[str]) -> bool:
    return any(argument == "--app" or argument.startswith("--app=") for argument in arguments)
