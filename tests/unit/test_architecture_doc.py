"""docs/architecture.md names the tree as it is: every module path and dotted module it
names exists, and every package under rdebug/ is in it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"

#: A file path in the doc: `rdebug/replay/log.py`, `replay/log.py`, `machine/_icount.c`.
_PATH = re.compile(r"(?<![\w./-])((?:[A-Za-z_]\w*/)+[A-Za-z_]\w*\.(?:py|c))\b")
#: A folder path in the doc: `rdebug/replay/`, `machine/devices/`.
_FOLDER = re.compile(r"(?<![\w./-])((?:[A-Za-z_]\w*/)+)(?![\w.])")
#: A dotted name rooted at the package: `rdebug.replay.log`, `rdebug.api.Session`.
_DOTTED = re.compile(r"\brdebug(?:\.[A-Za-z_]\w*)+")


def _file(relative: str) -> Path:
    """A path as the doc writes it: from the repository root when it starts there, else
    from the rdebug/ package."""
    first = relative.split("/", 1)[0]
    if first in ("rdebug", "tests", "bench", "docs", "sample_guests"):
        return ROOT / relative
    return ROOT / "rdebug" / relative


def _module_file(dotted: str) -> Path | None:
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _defines(module: Path, name: str) -> bool:
    """Whether `module` binds `name` at top level (a def, class, assignment or import)."""
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found = {node.name}
        elif isinstance(node, ast.Assign):
            found = {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found = {node.target.id}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            found = {alias.asname or alias.name.split(".")[0] for alias in node.names}
        else:
            continue
        if name in found:
            return True
    return False


def unknown_names(text: str) -> list[str]:
    """Every path, folder or dotted name in `text` that the tree does not have."""
    missing: list[str] = []
    for relative in _PATH.findall(text):
        if not _file(relative).is_file():
            missing.append(relative)
    for relative in _FOLDER.findall(text):
        if not _file(relative).is_dir():
            missing.append(relative)
    for dotted in _DOTTED.findall(text):
        if _module_file(dotted) is not None:
            continue
        module, _, attribute = dotted.rpartition(".")
        found = _module_file(module)
        if found is None or not _defines(found, attribute):
            missing.append(dotted)
    return sorted(set(missing))


def packages() -> list[str]:
    """Every package under rdebug/, as a path below rdebug/ (`machine/devices`)."""
    return sorted(
        str(init.parent.relative_to(ROOT / "rdebug"))
        for init in (ROOT / "rdebug").rglob("__init__.py")
        if init.parent != ROOT / "rdebug"
    )


def unmentioned_packages(text: str) -> list[str]:
    dotted = set(_DOTTED.findall(text))
    package_root = ROOT / "rdebug"
    folders = {
        str(path.relative_to(package_root))
        for path in map(_file, _FOLDER.findall(text))
        if path.is_relative_to(package_root)
    }
    return [
        package
        for package in packages()
        if package not in folders and "rdebug." + package.replace("/", ".") not in dotted
    ]


def test_every_name_in_the_architecture_doc_is_in_the_tree() -> None:
    assert unknown_names(DOC.read_text()) == []


def test_every_package_is_in_the_architecture_doc() -> None:
    assert packages(), "no packages found under rdebug/"
    assert unmentioned_packages(DOC.read_text()) == []


def test_the_checks_see_wrong_names() -> None:
    text = (
        "`replay/log.py` and `rdebug/replay/nothing.py`, `machine/nowhere/`, "
        "`rdebug.replay.timeline`, `rdebug.replay.gone`, `rdebug.api.Session`, "
        "`rdebug.api.NoSuchThing`, `machine/_icount.c`, `rdebug/snapshots/`"
    )
    assert unknown_names(text) == [
        "machine/nowhere/",
        "rdebug.api.NoSuchThing",
        "rdebug.replay.gone",
        "rdebug/replay/nothing.py",
    ]
    unmentioned = unmentioned_packages(text)
    assert "snapshots" not in unmentioned  # as a folder
    assert "replay" in unmentioned  # a module of a package does not mention the package
    assert "gdbstub" in unmentioned
