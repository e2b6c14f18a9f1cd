"""The Label Studio wing defines each helper once: no two of its modules define a function or class of
the same name (two `_find_or_create_project`s, `_task_payload`s and `_refresh_tasks`s drifted apart)."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

WING = Path(__file__).resolve().parents[2] / "annotation" / "services" / "labelstudio"


def defined_twice(folder: Path) -> dict[str, list[str]]:
    """Top-level function and class names -> the modules of `folder` that define them, where more than one."""
    where: dict[str, list[str]] = defaultdict(list)
    for path in sorted(folder.glob("*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                where[node.name].append(path.name)
    return {name: files for name, files in where.items() if len(files) > 1}


def test_no_two_modules_of_the_wing_define_the_same_helper() -> None:
    assert defined_twice(WING) == {}


def test_the_check_finds_a_helper_defined_twice(tmp_path: Path) -> None:
    (tmp_path / "push.py").write_text("def find_or_create_project():\n    pass\n", encoding="utf-8")
    (tmp_path / "adjudication.py").write_text("class Other:\n    pass\n\n\ndef find_or_create_project():\n    pass\n",
                                              encoding="utf-8")
    assert defined_twice(tmp_path) == {"find_or_create_project": ["adjudication.py", "push.py"]}
