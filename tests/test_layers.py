"""The pure parsing layer imports nothing from the sources or the archive above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "monitor"
# Bytes in, records out: the sources call these, so these never call back up.
PURE = sorted(
    [*(PACKAGE / "feeds").glob("*.py")]
    + [PACKAGE / f"{name}.py" for name in ("captions", "xmlsafe", "text", "charset", "query")]
    + [PACKAGE / "parsework.py"]
)
ABOVE = ("monitor.sources", "monitor.archive", "monitor.pipeline", "monitor.runner")


def imported(source: str, package: str) -> list[tuple[int, str]]:
    """(line, module) of every import in `source` (a module of `package`): at the top, in
    functions and under TYPE_CHECKING alike, with `from x import y` giving both x and x.y."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{module}" if module else base
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _above(module: str) -> bool:
    return any(module == top or module.startswith(top + ".") for top in ABOVE)


@pytest.mark.parametrize("path", PURE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_pure_module_imports_nothing_from_the_layers_above(path: Path) -> None:
    package = ".".join(["monitor", *path.relative_to(PACKAGE).parts[:-1]])
    source = path.read_text(encoding="utf-8")
    bad = [f"line {line}: {module}" for line, module in imported(source, package) if _above(module)]
    assert not bad, f"{path.name} imports from above the pure layer: {bad}"


def test_the_rule_sees_imports_in_functions_and_type_checking_blocks() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from monitor.sources.base import FetchContext\n"
        "def f():\n    from ..sources import page\n    import monitor.archive.sqlite\n"
    )
    modules = [m for _, m in imported(source, "monitor.feeds")]
    assert [m for m in modules if _above(m)] == [
        "monitor.sources.base",
        "monitor.sources.base.FetchContext",
        "monitor.sources",
        "monitor.sources.page",
        "monitor.archive.sqlite",
    ]
    assert not _above("monitor.sourcesets") and not _above("monitor.text")
