import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _import_settings(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_settings__debug_off_with_default_secret__refuses_with_message():
    result = _import_settings({"DEBUG": "False"})
    assert result.returncode != 0
    assert "insecure default SECRET_KEY" in result.stderr


def test_settings__debug_off_with_real_secret__loads():
    result = _import_settings({"DEBUG": "False", "SECRET_KEY": "x" * 50})
    assert result.returncode == 0, result.stderr
