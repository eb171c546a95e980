"""Settings of the minimal Django project: no ORM models, no admin, no sessions."""

from __future__ import annotations

import logging
import sys

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "djangoapp.urls"
WSGI_APPLICATION = "djangoapp.wsgi.application"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES: dict[str, object] = {}
USE_TZ = True

# What many apps do instead of Django's LOGGING dict.
logging.basicConfig(level=logging.INFO, stream=sys.stdout)
