"""The house has one direction: every import of a project module points down the layers (ground <-
middle <- top), no app imports the other's interface (web, API, commands), services never import
views, and the rooms form no circle. Read from the source with `ast`, so lazy imports count too."""
from __future__ import annotations

import ast
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("annotation", "taxonomy", "server")
GROUND, MIDDLE, TOP = 0, 1, 2
FLOOR_NAMES = {GROUND: "ground", MIDDLE: "middle", TOP: "top"}

# Rooms by longest matching prefix, each on a floor. Ground: plain algorithms, the taxonomy's
# models and version service, the one error class. Middle: annotation's data and services, and the
# plumbing both apps' interfaces share. Top: taxonomy's lifecycle, page contexts, web, API, commands.
ROOMS: dict[str, int] = {
    "annotation.core": GROUND,
    "annotation.errors": GROUND,
    "taxonomy.core": GROUND,
    "taxonomy.models": GROUND,
    "taxonomy.services.versions": GROUND,
    "annotation.models": MIDDLE,
    "annotation.changes": MIDDLE,  # change markers: read by selectors' cache keys, bumped by services
    "annotation.selectors": MIDDLE,
    # The judge audit re-judges gold cross-fitted with the offline judge (services.gold_learning, a read):
    # a room of its own above the label query, so services reading labels make no circle with it.
    "annotation.selectors.judge_audit": MIDDLE,
    "annotation.services": MIDDLE,
    "server.commands": MIDDLE,
    "server.api_errors": MIDDLE,
    "server.web": MIDDLE,  # the page view both apps' web pages are made with
    "server.admin_base": MIDDLE,  # the admin base of both apps (delete confirmation by counts)
    "annotation.pages": TOP,
    "annotation.web": TOP,
    "annotation.api": TOP,
    "annotation.management": TOP,
    "annotation.admin": TOP,
    "annotation.tasks": TOP,  # thin task wrappers around services, like commands
    "annotation.templatetags": TOP,  # number formats of the pages and the report
    "taxonomy.services": TOP,
    "taxonomy.services.report": TOP,  # renders the page contexts: above them, like the web pages
    "taxonomy.pages": TOP,
    "taxonomy.charts": TOP,
    "taxonomy.web": TOP,
    "taxonomy.api": TOP,
    "taxonomy.management": TOP,
    "taxonomy.admin": TOP,
    "taxonomy.tasks": TOP,
    "server": TOP,  # settings, urls, asgi/wsgi: the project wires both apps together
}
# An app's interface rooms: only the same room (and the project's URL wiring) may import them.
INTERFACES = ("annotation.web", "annotation.api", "annotation.management",
              "taxonomy.web", "taxonomy.api", "taxonomy.management")
INTERFACE_IMPORTERS = ("server.urls",)
SKIPPED = (".migrations", ".apps")  # generated migrations; AppConfig only names its app


LIBRARIES = ("annotation.core", "taxonomy.core")  # each file a room: plain libraries


def room_of(module: str) -> str | None:
    """The room a module lives in (the longest prefix in ROOMS), None for a module outside the apps."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LIBRARIES and n < len(parts):
            return ".".join(parts[: n + 1])
        if prefix in ROOMS:
            return prefix
    return None


def floor_of(room: str) -> int:
    return ROOMS[room] if room in ROOMS else ROOMS[room.rsplit(".", 1)[0]]


def module_name(path: Path, root: Path) -> str:
    dotted = ".".join(path.relative_to(root).with_suffix("").parts)
    return dotted.removesuffix(".__init__")


def project_imports(path: Path, root: Path) -> set[str]:
    """Project modules imported anywhere in the file (top level, functions, TYPE_CHECKING blocks)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the file's package
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in APPS and _is_module(n, root))
    return found


def _is_module(name: str, root: Path) -> bool:
    base = root.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def import_graph(root: Path) -> dict[str, set[str]]:
    """module -> project modules it imports, for every module of the apps."""
    graph = {}
    for app in APPS:
        for path in sorted((root / app).rglob("*.py")):
            module = module_name(path, root)
            if any(part in module for part in SKIPPED):
                continue
            graph[module] = project_imports(path, root)
    return graph


def violations(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """Every import against the layers, as 'importer -> imported: why'."""
    found = []
    for importer, imported in sorted(graph.items()):
        source = room_of(importer)
        for target_module in sorted(imported):
            target = room_of(target_module)
            if source is None or target is None or source == target:
                continue
            if floor_of(target) > floor_of(source):
                found.append(f"{importer} -> {target_module}: {FLOOR_NAMES[floor_of(source)]} imports "
                             f"{FLOOR_NAMES[floor_of(target)]} (arrows only point down)")
            elif target in INTERFACES and not importer.startswith(INTERFACE_IMPORTERS):
                found.append(f"{importer} -> {target_module}: {target} is an interface; only it and the "
                             "URL wiring may import it")
    return found + [f"circle of rooms: {' -> '.join(c)}" for c in room_cycles(graph)]


def room_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Circles in the graph of rooms (a room importing itself is fine)."""
    edges: dict[str, set[str]] = {}
    for importer, imported in graph.items():
        source = room_of(importer)
        for target in filter(None, map(room_of, imported)):
            if source is not None and target != source:
                edges.setdefault(source, set()).add(target)
    cycles, state = [], {}

    def visit(room: str, trail: list[str]) -> None:
        state[room] = "open"
        for nxt in sorted(edges.get(room, ())):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[room] = "done"

    for room in sorted(edges):
        if room not in state:
            visit(room, [room])
    return cycles


def test_every_module_of_the_apps_has_a_room() -> None:
    homeless = [m for m in import_graph(ROOT) if room_of(m) is None and m not in APPS]
    assert not homeless, f"modules on no floor (add them to ROOMS): {homeless}"


def test_imports_follow_the_layers() -> None:
    found = violations(import_graph(ROOT))
    assert not found, "imports against the layers:\n" + "\n".join(found)


@pytest.mark.parametrize(("graph", "expected"), [
    ({"annotation.core.agreement": {"annotation.selectors.agreement"}},
     "annotation.core.agreement -> annotation.selectors.agreement: ground imports middle"),
    ({"annotation.services.sampling": {"taxonomy.services.induction"}},
     "annotation.services.sampling -> taxonomy.services.induction: middle imports top"),
    ({"taxonomy.services.report": {"annotation.web.views"}},
     "taxonomy.services.report -> annotation.web.views: annotation.web is an interface"),
    ({"taxonomy.management.commands.report": {"annotation.management.base"}},
     "taxonomy.management.commands.report -> annotation.management.base: annotation.management is an interface"),
    ({"taxonomy.pages": {"annotation.pages"}, "annotation.pages": {"taxonomy.pages"}},
     "circle of rooms: annotation.pages -> taxonomy.pages -> annotation.pages"),
    ({"taxonomy.core.induction": {"annotation.core.prompts"}, "annotation.core.prompts": {"taxonomy.core.induction"}},
     "circle of rooms: annotation.core.prompts -> taxonomy.core.induction -> annotation.core.prompts"),
])
def test_the_checker_reports_a_wrong_way_import(graph: dict, expected: str) -> None:
    assert any(v.startswith(expected) for v in violations(graph)), violations(graph)


def test_the_checker_allows_the_right_way() -> None:
    graph = {"taxonomy.services.induction": {"annotation.services.judging", "taxonomy.core.induction"},
             "annotation.selectors.agreement": {"annotation.selectors", "taxonomy.models"},
             "server.urls": {"annotation.web.urls", "taxonomy.api.urls"},
             "taxonomy.management.commands.report": {"server.commands", "taxonomy.services.report"}}
    assert violations(graph) == []


def test_a_wrong_way_import_planted_in_a_copy_of_the_apps_fails(tmp_path: Path) -> None:
    for app in APPS:
        shutil.copytree(ROOT / app, tmp_path / app, ignore=shutil.ignore_patterns("__pycache__", "migrations"))
    assert violations(import_graph(tmp_path)) == []
    sampling = tmp_path / "annotation" / "services" / "sampling.py"
    # Lazy, inside a function, as the old report's view import was.
    sampling.write_text(sampling.read_text(encoding="utf-8") + (
        "\n\ndef _planted():\n    from taxonomy.services.report import write_report\n    return write_report\n"),
        encoding="utf-8")
    found = violations(import_graph(tmp_path))
    assert found[0] == (
        "annotation.services.sampling -> taxonomy.services.report: middle imports top (arrows only point down)")
    # It also closes a circle: report -> page contexts -> annotation's services -> report.
    assert all(v == found[0] or v.startswith("circle of rooms: ") for v in found) and len(found) > 1


def private_imports(root: Path) -> list[str]:
    """'module: name from other' for every import of another module's private (_underscored) name."""
    found = []
    for app in APPS:
        for path in sorted((root / app).rglob("*.py")):
            module = module_name(path, root)
            if any(part in module for part in SKIPPED):
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                        and node.module.split(".")[0] in APPS):
                    found += [f"{module}: {alias.name} from {node.module}" for alias in node.names
                              if alias.name.startswith("_") and not alias.name.startswith("__")]
    return found


def test_no_module_imports_another_modules_private_name(tmp_path: Path) -> None:
    assert private_imports(ROOT) == []
    planted = tmp_path / "annotation" / "services"
    planted.mkdir(parents=True)
    (planted / "planted.py").write_text("from annotation.selectors import _version_labels\n", encoding="utf-8")
    assert private_imports(tmp_path) == ["annotation.services.planted: _version_labels from annotation.selectors"]
