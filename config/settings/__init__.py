"""Settings package.

``base`` composes the topic modules (``tenants``, ``cache``, ``celery``,
``stripe``, ``sentry``, ``security``, ``logging``); ``dev``, ``test`` and
``prod`` select the environment. Every value comes from the environment
through :mod:`config.settings.env`.
"""
