"""Django app keeping Tasktronaut runs in the Django database (for ``django-db`` results).

Add ``"tasktronaut_celery.contrib.django"`` to ``INSTALLED_APPS`` next to
``"django_celery_results"`` and run ``manage.py migrate``.
"""
