"""The core/ modules stay plain Python: none may import Django, directly or through project modules."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE_MODULES = sorted(ROOT.glob("*/core/**/*.py"))
FORBIDDEN_ROOTS = {"django", "rest_framework", "drf_spectacular", "celery"}
PROJECT_ROOTS = {"annotation", "taxonomy", "server"}


def _module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _django_imports(path: Path, seen: set[Path] | None = None) -> set[str]:
    """Forbidden imports reachable from `path`, following imports of project modules."""
    seen = seen if seen is not None else set()
    if path in seen:
        return set()
    seen.add(path)
    bad: set[str] = set()
    for module in _imports(path):
        root = module.split(".")[0]
        if root in FORBIDDEN_ROOTS:
            bad.add(f"{module} (in {path.relative_to(ROOT)})")
        elif root in PROJECT_ROOTS:
            parts = module.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, ...
                target = _module_file(".".join(parts[:i]))
                if target is not None:
                    bad |= _django_imports(target, seen)
    return bad


def test_there_are_core_modules_to_check() -> None:
    assert any(p.name == "agreement.py" for p in CORE_MODULES)


def test_the_checker_catches_an_indirect_django_import() -> None:
    # annotation/models.py imports django.db, so reaching it must be reported.
    assert _django_imports(ROOT / "annotation" / "models.py")


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_module_does_not_import_django(path: Path) -> None:
    bad = _django_imports(path)
    assert not bad, f"{path.relative_to(ROOT)} reaches {sorted(bad)}; core/ must stay free of Django"
