"""No gextui module imports itself back, `if TYPE_CHECKING:` imports included.

Views used to reach into the App and the App imports every view: eleven modules
were one lump that could only be read and changed together. The views now post
messages (`gextui.messages`) and are given what they read (`DeskContext`); this
keeps it so. The import-linter layers contract in pyproject.toml says the same
from the other side (no view imports gextui.app); this walks the source itself,
so a type-only import, which the interpreter never runs, still counts.
"""

from __future__ import annotations

from pathlib import Path

from tests.house.test_no_import_cycles import ROOT, cycles, imports_of


def gextui_modules() -> dict[str, Path]:
    found = {}
    for path in (ROOT / "gextui").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    known = gextui_modules()
    # A package's own __init__ re-exporting its modules is not a circle through them.
    return {
        name: {t for t in imports_of(name, path, known) if not name.startswith(t + ".")}
        for name, path in known.items()
    }


def test_type_only_imports_are_walked_too() -> None:
    graph = import_graph()
    # base.py's DaemonCalls is an annotation only; it must still be seen.
    assert "gextui.link" in graph["gextui.views.base"]
    assert "gextui.app" in graph["gextui.__main__"]


def test_no_view_imports_the_app() -> None:
    graph = import_graph()
    reaching = sorted(name for name, targets in graph.items() if "gextui.app" in targets)
    assert reaching == ["gextui.__main__"]


def test_gextui_has_no_import_cycles() -> None:
    found = cycles(import_graph())
    assert found == [], "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)
