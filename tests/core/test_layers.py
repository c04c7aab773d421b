"""The apps import one way: support -> comms -> rollouts -> flags -> core (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDER = ["core", "flags", "rollouts", "comms", "support"]  # lowest first


def imported_apps(path: Path) -> set[str]:
    """Top-level packages of the project that a module imports (at any depth in the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & set(ORDER)


@pytest.mark.parametrize("app", ORDER)
def test_app__imports_only_lower_apps(app):
    higher = set(ORDER[ORDER.index(app) + 1 :])
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_apps(path) & higher)
        for path in (ROOT / app).rglob("*.py")
        if imported_apps(path) & higher
    }
    assert wrong == {}


@pytest.mark.parametrize("app", ["comms", "support"])
def test_services__never_import_tasks(app):
    """Tasks import services; services enqueue tasks by name (core.queue), so no circle."""
    services = ROOT / app / "services"
    paths = list(services.rglob("*.py")) if services.is_dir() else [ROOT / app / "services.py"]
    for path in paths:
        tree = ast.parse(path.read_text())
        modules = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        names = {
            f"{node.module}.{alias.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
            for alias in node.names
        }
        assert f"{app}.tasks" not in modules | names, path
