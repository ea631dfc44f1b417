# syntax=docker/dockerfile:1
# Outpost application image: one image for every process the Helm chart runs
# (gunicorn web, Celery workers, Celery beat, the migration Job); only the
# command differs.
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

# libpq5: the PostgreSQL client library psycopg loads when it is not installed
# with its bundled binary build. tini: a minimal init as PID 1, so children
# left behind by exec probes (celery inspect ping) are reaped and signals
# reach gunicorn and Celery unchanged.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 tini \
    && rm -rf /var/lib/apt/lists/*

# A fixed, unprivileged uid/gid that the chart's securityContext names
# (runAsUser: 10001); never root at run time.
RUN groupadd --system --gid 10001 outpost \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /tmp --shell /usr/sbin/nologin outpost

WORKDIR /app

# Dependencies first so that code-only changes reuse this layer.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

# The code stays owned by root: the process can read it but not change it.
# Bytecode is compiled now because the read-only filesystem cannot cache it
# later, and every probe (`celery inspect ping`) starts a fresh interpreter.
COPY . .
RUN python -m compileall -q .

# Static files are collected once, at build, into the image (the root
# filesystem is read-only at run time). The settings demand these variables;
# the values are placeholders that reach neither a database nor Redis.
# SECRET_KEY is random per build and discarded with the layer's environment.
RUN SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(64))')" \
    DJANGO_SETTINGS_MODULE=config.settings.prod \
    DATABASE_URL=postgres://build@localhost/build \
    REDIS_URL=redis://localhost:6379/0 \
    ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput

USER 10001:10001

EXPOSE 8000

# The default process is the web server; workers, beat and migrations pass
# their own command line as arguments (the Helm chart sets `args`), which
# tini runs in place of this one.
ENTRYPOINT ["tini", "--"]
CMD ["gunicorn", "-c", "config/gunicorn.conf.py", "config.wsgi:application"]
