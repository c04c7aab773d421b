import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

# OFREP and the Unleash client API skip the middleware stack (see flags/machine_wsgi.py).
from flags.machine_wsgi import machine_dispatch  # noqa: E402

application = machine_dispatch(django_application)
