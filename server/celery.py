"""The Celery application: stages run as tasks on Redis when CELERY_BROKER_URL is set, in process otherwise."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "server.settings")

app = Celery("errormap")
# Every CELERY_* Django setting configures the app (server/settings.py says which and why).
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # annotation/tasks.py, taxonomy/tasks.py
