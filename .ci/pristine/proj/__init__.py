"""A tiny Celery project, as a user writes one, for the pristine-install check (``.ci/pristine/run``)."""
