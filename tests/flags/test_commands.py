"""Management commands: flags_import, flags_export, sdk_key_create (exit codes and output)."""

from __future__ import annotations

import json

import pytest
from django.core.management import ManagementUtility
from django.db import connections

from flags import sdk_auth
from flags.models import Environment, Flag, SdkKey
from tests.flags.factories import EnvironmentFactory
from tests.flags.test_importexport import UNLEASH_DOCUMENT


@pytest.fixture
def run(monkeypatch):
    """Run like `manage.py ...` does (CommandError -> stderr + exit 1); returns the exit code."""
    # run_from_argv closes every connection when done, which would end the test transaction.
    monkeypatch.setattr(connections, "close_all", lambda: None)

    def run_command(*argv: str) -> int:
        try:
            ManagementUtility(["manage.py", *argv]).execute()
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    return run_command


@pytest.fixture
def document(tmp_path):
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(UNLEASH_DOCUMENT))
    return path


def test_flags_import__valid_file__exit_0_and_summary(run, db, document, capsys):
    EnvironmentFactory(key="production")
    assert run("flags_import", "--environment", "production", str(document)) == 0
    assert "6 flag(s) created" in capsys.readouterr().out
    assert Flag.objects.count() == 6


def test_flags_import__invalid_file__exit_1_report_on_stderr_nothing_changed(
    run, db, tmp_path, capsys
):
    EnvironmentFactory(key="production")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"features": [{"name": "ok"}, {"name": "no good"}, {"name": "-x"}]}))
    assert run("flags_import", "--environment", "production", str(path)) == 1
    err = capsys.readouterr().err
    assert "Nothing was imported: fix 2 problem(s)" in err
    assert "'no good'" in err and "'-x'" in err
    assert Flag.objects.count() == 0


def test_flags_import__not_json__exit_1(run, db, tmp_path, capsys):
    EnvironmentFactory(key="production")
    path = tmp_path / "bad.json"
    path.write_text("{")
    assert run("flags_import", "--environment", "production", str(path)) == 1
    assert "not valid JSON" in capsys.readouterr().err


def test_flags_import__missing_environment__exit_1_unless_create(run, db, document, capsys):
    assert run("flags_import", "--environment", "qa", str(document)) == 1
    assert "no environment 'qa'" in capsys.readouterr().err
    assert run("flags_import", "--environment", "qa", "--create", str(document)) == 0
    assert Environment.objects.filter(key="qa").exists()


def test_flags_export__environment__json_on_stdout_that_imports_back(run, db, document, capsys):
    EnvironmentFactory(key="production")
    run("flags_import", "--environment", "production", str(document))
    capsys.readouterr()
    assert run("flags_export", "--environment", "production") == 0
    exported = json.loads(capsys.readouterr().out)
    assert {f["name"] for f in exported["features"]} == {
        f["name"] for f in UNLEASH_DOCUMENT["features"]
    }


def test_flags_export__unknown_environment__exit_1(run, db, capsys):
    assert run("flags_export", "--environment", "nope") == 1
    assert "no environment 'nope'" in capsys.readouterr().err


def test_sdk_key_create__environment__key_alone_on_last_line(run, db, capsys):
    EnvironmentFactory(key="production")
    assert run("sdk_key_create", "--environment", "production", "--name", "Checkout") == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("rc_production_")
    assert " " not in last
    sdk_key = SdkKey.objects.get()
    assert sdk_key.name == "Checkout"
    assert sdk_key.key_hash == sdk_auth.hash_key(last)


def test_sdk_key_create__unknown_environment__exit_1(run, db, capsys):
    assert run("sdk_key_create", "--environment", "nope") == 1
    assert SdkKey.objects.count() == 0
