"""Each framework extra installs everything its README example imports (issue 16).

``pip install 'sessionkeeper[langgraph]'`` once installed only ``langgraph-checkpoint``, so
the README's LangGraph example failed in a fresh venv with ``No module named
'langgraph.graph'``. Here every module a README example imports is traced to the
distribution that ships its file, and that distribution must be the extra's requirement or
one of their dependencies (read from the installed metadata, as pip resolves them).
"""

from __future__ import annotations

import ast
import functools
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).parents[1]
SECTIONS = {  # README heading → the extra its example needs
    "OpenAI Agents SDK": "openai-agents",
    "LangChain": "langchain",
    "LangGraph": "langgraph",
    "Google ADK": "adk",
    "Google ADK memory": "adk",
    "Pydantic AI": "pydantic-ai",
}


def example(heading: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split(f"\n### {heading}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found, f"no Python example under ### {heading}"
    return found.group(1)


def imported_modules(code: str) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
    return {
        m
        for m in modules
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "sessionkeeper"
    }


@functools.cache
def owner(module: str) -> str:
    """The distribution that ships ``module`` (namespace packages have several), found in
    the distributions' file lists: nothing is imported."""
    path = module.replace(".", "/")
    wanted = {f"{path}.py", f"{path}/__init__.py"}
    for name in _top_level().get(module.split(".")[0], []):
        if any(str(f) in wanted for f in metadata.distribution(name).files or []):
            return canonicalize_name(name)
    raise AssertionError(f"no installed distribution ships {module}")


@functools.cache
def _top_level() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def closure(requirements: list[str]) -> set[str]:
    """The distributions these requirements install: themselves and their dependencies."""
    seen: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        for extra in req.extras:
            todo += [r for r in _requires(name) if r.marker and r.marker.evaluate({"extra": extra})]
        todo += [r for r in _requires(name) if not r.marker or r.marker.evaluate({"extra": ""})]
    return seen


def _requires(name: str) -> list[Requirement]:
    try:
        return [Requirement(r) for r in metadata.requires(name) or []]
    except metadata.PackageNotFoundError:
        return []


@pytest.mark.parametrize("heading", sorted(SECTIONS))
def test_each_extra_installs_what_its_readme_example_imports(heading: str) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extra = pyproject["project"]["optional-dependencies"][SECTIONS[heading]]
    installed = closure(extra)
    modules = imported_modules(example(heading))
    assert modules, heading
    missing = {m: owner(m) for m in modules if owner(m) not in installed}
    assert not missing, f"[{SECTIONS[heading]}] does not install {missing}"
