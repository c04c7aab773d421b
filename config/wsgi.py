import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_application = get_wsgi_application()

# OFREP and the Unleash client API skip the middleware stack (see flags/machine_wsgi.py).
from flags.machine_wsgi import machine_dispatch  # noqa: E402

application = machine_dispatch(django_application)

# Everything loaded so far (Django, the apps, their modules) lives as long as the process:
# keep it out of the garbage collector's full passes, which otherwise walk it all and show up
# as the slowest page requests (see bench/pages.py). ROLLCALL_GC_FREEZE=0 turns this off.
if os.environ.get("ROLLCALL_GC_FREEZE", "1") != "0":
    gc.freeze()
