"""The web process's WSGI module: what it does once at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = "import gc, config.wsgi; print(gc.get_freeze_count())"


@pytest.mark.parametrize(("setting", "frozen"), [(None, True), ("1", True), ("0", False)])
def test_wsgi__start_up_objects_kept_out_of_full_gc_passes_unless_turned_off(setting, frozen):
    env = {k: v for k, v in os.environ.items() if k != "ROLLCALL_GC_FREEZE"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
    if setting is not None:
        env["ROLLCALL_GC_FREEZE"] = setting
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120, check=True,
    ).stdout  # fmt: skip
    count = int(out.strip().splitlines()[-1])
    assert (count > 0) is frozen
