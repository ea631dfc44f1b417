"""The Celery application: tenant-aware tasks, one queue per plan tier.

``tenant_schemas_celery`` carries the sending connection's schema in a task
header and switches the worker's connection to it before the task runs, so a
task sent while serving an organisation runs in that organisation's schema.
Routing goes through :func:`billing.queues.enqueue_for_organisation`; platform
tasks use the default ``platform`` queue.
"""

from __future__ import annotations

import os

from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")

app = CeleryApp("outpost")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
