FROM python:3.11-slim
# PRODUCTION=1: the app refuses to start on SQLite, the filesystem broker, a generated or placeholder
# secret (docker-compose.yml gives it PostgreSQL, Redis and a bucket).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PRODUCTION=1 \
    VAR_DIR=/data/var SCRATCH_DIR=/data/var/scratch MEDIA_ROOT=/data/media STATIC_ROOT=/app/staticfiles
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# static files collected at build time: the code and /app stay read-only for the app user
# and the OHIF Viewer served at /ohif/ (npm @ohif/app, pinned and integrity-checked; /app/var/ohif)
RUN PRODUCTION=0 SECRET_KEY=build-time-only-collectstatic-0123456789abcdef python manage.py collectstatic --noinput -v 0 \
    && PRODUCTION=0 SECRET_KEY=build-time-only-collectstatic-0123456789abcdef python manage.py install_ohif \
    && useradd --create-home --uid 1000 app && mkdir -p /data/media /data/var && chown -R app /data
USER app
EXPOSE 8000
CMD ["python", "manage.py", "serve", "web", "--host", "0.0.0.0", "--port", "8000"]
