"""Defect 7 of issue 11: every `pedclip ...` command the package's messages tell a user to run exists."""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import typer

import pedclip
from pedclip.cli import _register, app

PACKAGE = Path(pedclip.__file__).parent
COMMAND = re.compile(r"\bpedclip((?: [a-z][a-z0-9-]*)+)")
# "pedclip <word>" in prose, not a command; a new prose phrase goes here, a new command into the CLI
PROSE = {
    "did",
    "does",
    "never",
    "supports",
    "already",
    "synthetic",
    "store at",
    "checkpoint",
    "or",
    "command",
    "alike",
}


def message_strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant in a module that is not a docstring (f-string parts included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def quoted_commands() -> list[tuple[str, str]]:
    """(where, words after `pedclip`) for every command named in a message, backticked or not."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for line, text in message_strings(path):
            for match in COMMAND.finditer(text):
                words = match.group(1).split()
                if words[0] in PROSE or " ".join(words[:2]) in PROSE:
                    continue
                found.append((f"{path.relative_to(PACKAGE.parent)}:{line}", " ".join(words)))
    return found


@functools.cache
def command_tree():
    """The CLI's click command tree, built once (building it per quoted command took minutes)."""
    _register()
    return typer.main.get_command(app)


def unknown_command(words: list[str]) -> str | None:
    """The first word that is not a subcommand where one is needed; None when the words name a command."""
    node = command_tree()
    for word in words:
        commands = getattr(node, "commands", None)
        if commands is None:  # a leaf command: the rest are its arguments
            return None
        if word not in commands:
            return word
        node = commands[word]
    return None


def test_every_quoted_command_exists() -> None:
    quoted = quoted_commands()
    assert len(quoted) > 30  # the collector finds the hints (demo, embed, data split, models list ...)
    wrong = [(where, words) for where, words in quoted if unknown_command(words.split()) is not None]
    assert not wrong, f"messages name commands the CLI does not have: {wrong}"


def test_the_walk_rejects_what_does_not_exist() -> None:
    assert unknown_command(["eval", "zeroshot"]) == "eval"
    assert unknown_command(["data", "cases"]) == "cases"
    assert unknown_command(["train"]) == "train"
    assert unknown_command(["data", "ingest", "anything", "--name"]) is None
