"""docs/cli.md is generated from the CLI; this fails when the two drift."""

from pathlib import Path

from sessionkeeper.cli.docs import render

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_cli_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/cli.md is out of date: run `python -m sessionkeeper.cli.docs > docs/cli.md`"
    )


def test_every_command_has_help() -> None:
    text = render()
    for block in text.split("\n## ")[1:]:
        name, _, body = block.partition("\n")
        usage_line = next(line for line in body.splitlines() if line.startswith("Usage:"))
        after_usage = body.split(usage_line, 1)[1].strip().removeprefix("```").strip()
        assert after_usage and not after_usage.startswith("Options:"), f"{name} has no help text"
