"""WSGI entry point (gunicorn ``config.wsgi:application``)."""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")
application = get_wsgi_application()

# Import every view now rather than on the first request, then move everything loaded so far out of
# the garbage collector's reach: the interpreter's full collections otherwise walk the whole of Django
# and the app again and again, which shows up as random multi-millisecond pauses in requests that
# allocate a lot (a 500-mutation push builds thousands of objects).
get_resolver().url_patterns  # noqa: B018
gc.collect()
gc.freeze()
