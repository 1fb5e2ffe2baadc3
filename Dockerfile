FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY matchplatform ./matchplatform
COPY ops ./ops
COPY flags ./flags
COPY runs ./runs
RUN pip install --no-cache-dir .
COPY . .
RUN DJANGO_ENV=development python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "matchplatform.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--worker-class", "gthread", "--threads", "8"]
