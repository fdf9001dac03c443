"""README.md's Layout block is generated from the source tree; this fails when the two drift."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _layout() -> ModuleType:
    spec = importlib.util.spec_from_file_location("layout", ROOT / "scripts" / "layout.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_layout_is_current() -> None:
    layout = _layout()
    assert layout.current() == layout.render(), (
        "README.md's Layout block is out of date: run `make docs`"
    )


def test_layout_names_every_module() -> None:
    text = _layout().render()
    package = ROOT / "src" / "sessionkeeper"
    for path in package.rglob("*.py"):
        if "versions" in path.parts or "__pycache__" in path.parts:
            continue
        name = "src/sessionkeeper/" if path.parent == package else path.parent.name + "/"
        if path.name != "__init__.py":
            name = path.name
        assert f" {name} " in text or f"\n{name} " in text, f"{path} missing from the layout"


def test_replace_block_keeps_the_rest() -> None:
    layout = _layout()
    text = "before\n<!-- layout:start -->\nold\n<!-- layout:end -->\nafter\n"
    assert layout.replace_block(text, "NEW") == "before\nNEW\nafter\n"
