"""The layout rules of DESIGN.md and the README, read from the code itself, so that the
house stays in order as it grows: room sizes, and which way the imports run."""

from __future__ import annotations

import ast
import enum
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTEXTS = ("register", "identity", "contracts", "escrow", "outbox", "public")
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 80


def _sources(package: str) -> list[Path]:
    return sorted(
        path for path in (ROOT / package).rglob("*.py") if "migrations" not in path.parts
    )


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import in the file."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [alias.name for alias in node.names]
            found.append((node.module, names))
            # ``from api.x import routes`` imports the module api.x.routes.
            found += [(f"{node.module}.{name}", []) for name in names]
    return found


def _context(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "api" and parts[1] in CONTEXTS else None


def test_no_room_is_a_hall() -> None:
    too_long = {
        str(path.relative_to(ROOT)): lines
        for path in _sources("api")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    }
    assert too_long == {}


def test_no_function_is_a_corridor() -> None:
    """The demo world is a script of fixtures and may run long; nothing else."""
    too_long = {}
    for package in ("api", "signing", "notifications", "miniapp_mock"):
        for path in _sources(package):
            if path == ROOT / "api" / "demo.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        too_long[f"{path.relative_to(ROOT)}:{node.name}"] = length
    assert too_long == {}


def test_the_pure_libraries_import_nothing_of_ours() -> None:
    ours = ("api", "signing", "notifications", "miniapp_mock")
    for package in ("signing", "notifications"):
        for path in _sources(package):
            foreign = [
                module
                for module, _ in _imports(path)
                if module.split(".")[0] in ours and module.split(".")[0] != package
            ]
            assert foreign == [], path


def test_only_the_app_imports_routes() -> None:
    """A context reaches another through its rules, never through its HTTP layer."""
    for path in _sources("api"):
        module = _module(path)
        for imported, _ in _imports(path):
            if imported.endswith(".routes"):
                assert module == "api.app", f"{module} imports {imported}"


def test_only_the_command_and_the_app_know_the_demo() -> None:
    allowed = {"api.cli", "api.app", "api.demo"}
    for path in _sources("api"):
        module = _module(path)
        if module not in allowed:
            assert "api.demo" not in [m for m, _ in _imports(path)], module


def test_persistence_imports_no_context() -> None:
    for path in _sources("api/db"):
        contexts = [m for m, _ in _imports(path) if _context(m) or m == "api.tables"]
        assert contexts == [], path


def test_contexts_share_no_tables() -> None:
    """Another context's models module may lend its enums (a role, a status), never a table."""
    for path in _sources("api"):
        here = _context(_module(path))
        for imported, names in _imports(path):
            there = _context(imported)
            if not imported.endswith(".models") or there is None or here in (None, there):
                continue
            models = importlib.import_module(imported)
            tables = [n for n in names if not issubclass(getattr(models, n), enum.Enum)]
            assert tables == [], f"{path.relative_to(ROOT)} uses {imported}: {tables}"


def test_nothing_is_handed_over_on_the_app_state() -> None:
    """Contexts call each other through imports anyone can read, not through functions
    left on ``app.state``; only ``create_app`` puts things there."""
    for path in _sources("api"):
        if path == ROOT / "api" / "app.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                written = target.value if isinstance(target, ast.Subscript) else target
                assert not (
                    isinstance(written, ast.Attribute) and written.attr == "state"
                ), f"{path.relative_to(ROOT)}:{node.lineno} writes to a state"
