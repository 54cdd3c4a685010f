"""The design's structural rules, read from the source: import direction, who reads the environment, who runs SQL."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "commands", "providers")


def _modules() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(ROOT)): ast.parse(path.read_text(encoding="utf-8"))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
    }


def _imports(tree: ast.Module) -> set[str]:
    """Every module a file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _uses(tree: ast.Module, owner: str, attrs: set[str]) -> bool:
    """Whether the file touches `owner.<one of attrs>` (e.g. os.environ)."""
    return any(
        isinstance(node, ast.Attribute)
        and node.attr in attrs
        and isinstance(node.value, ast.Name)
        and node.value.id == owner
        for node in ast.walk(tree)
    )


def test_the_import_direction_is_commands_then_bot_then_providers() -> None:
    wrong = []
    for path, tree in _modules().items():
        top = {name.split(".")[0] for name in _imports(tree)}
        if path.startswith("providers/") and top & {"bot", "commands"}:
            wrong.append(f"{path} imports {sorted(top & {'bot', 'commands'})}")
        if path.startswith("bot/") and "commands" in top:
            wrong.append(f"{path} imports commands")
    assert wrong == []


def test_only_bot_config_reads_the_environment() -> None:
    readers = [path for path, tree in _modules().items() if _uses(tree, "os", {"environ", "getenv", "environb"})]
    assert readers == ["bot/config.py"]


def test_only_the_store_opens_a_database() -> None:
    modules = _modules()
    openers = [path for path, tree in modules.items() if _uses(tree, "sqlite3", {"connect"})]
    sqlite_utils = [path for path, tree in modules.items() if any(n.startswith("sqlite_utils") for n in _imports(tree))]
    assert openers and all(path.startswith("bot/store/") for path in openers)
    assert sqlite_utils == ["bot/store/schema.py"]
