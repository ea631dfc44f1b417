"""Outpost project configuration: settings, URLconfs, Celery app, WSGI/ASGI entry points."""
