FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MEDIA_ROOT=/data/media VAR_DIR=/data/var
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --create-home --uid 1000 app && mkdir -p /data/media /data/var && chown -R app /data
USER app
EXPOSE 8000
CMD ["python", "manage.py", "serve", "web", "--host", "0.0.0.0", "--port", "8000"]
