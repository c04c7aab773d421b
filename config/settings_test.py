"""Test settings: the same settings, with fast password hashing and in-memory email."""

import os

from .settings import *  # noqa: F403
from .settings import DATABASE_URL, DATABASES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if not DATABASE_URL:
    # The test database is created by pytest-django; keep the embedded settings otherwise.
    DATABASES["default"]["TEST"] = {"NAME": ":memory:"}

# Each test run gets its own queue so that stale messages of an earlier run never reach
# the workers that integration tests start (they receive CELERY_QUEUE in their env).
CELERY_TASK_DEFAULT_QUEUE = f"rollcall-test-{os.getpid()}"
if "KEY_PREFIX" in CACHES["default"]:
    # A shared Redis: keep this run's cache keys apart from other runs and from `make run`.
    CACHES["default"]["KEY_PREFIX"] = f"rollcall-test-{os.getpid()}"

# The tests' real HTTP receivers listen on 127.0.0.1; allowing exactly that address keeps
# every other internal address refused (the guard's own tests set their own list).
ROLLCALL_OUTBOUND_ALLOW = ["127.0.0.1"]

# OFREP usage counts are flushed by the tests themselves (`flags.usage.ofrep_flush`), never by
# a background thread writing into another test's database.
FLAGS_USAGE_FLUSH_SECONDS = 0
