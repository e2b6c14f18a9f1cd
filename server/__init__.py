"""The Django project: settings, URLs, WSGI/ASGI entry points and the Celery application."""
from server import checks  # noqa: F401  (registers the deployment checks)
from server.celery import app as celery_app

__all__ = ["celery_app"]
