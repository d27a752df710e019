"""``nas COMMAND --help``: a command's keys, their values and meanings, from its schema.

The meanings are read from where the code documents each setting already, so they are
never written twice: a comment on the field's line or on the lines just above it, else
the ``Attributes:`` entry of its class's docstring. Settings groups (``train.*``,
``model.*``) are walked with the prefix of their key.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import re
import shutil
import textwrap
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

# A field line of a class body: four spaces, the name, a colon (after textwrap.dedent).
_FIELD_LINE = re.compile(r"^    (\w+)\s*:")
# An ``Attributes:`` entry: the name (or names, comma-separated), a colon, its text;
# deeper lines continue it.
_ATTRIBUTE_LINE = re.compile(r"^(\s+)(\w+(?:,\s*\w+)*):\s*(.*)$")
# The widest a help line is folded to, whatever the terminal.
_MAX_WIDTH = 110


@dataclass(frozen=True)
class KeyHelp:
    """One row of a command's help: ``key`` (dotted in a group), its value, its meaning."""

    key: str
    value: str
    meaning: str


def _comment_meanings(cls: type) -> dict[str, str]:
    """Field name -> the comments on its line and on the comment lines just above it."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a zipped install, a class made at run time)
        return {}
    comments: dict[int, str] = {}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        return {}
    meanings: dict[str, str] = {}
    above: list[str] = []
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(comments.get(number, ""))
            continue
        match = _FIELD_LINE.match(line)
        if match is not None:
            text = " ".join(part for part in [*above, comments.get(number, "")] if part)
            if text:
                meanings[match.group(1)] = text
        above = []
    return meanings


def _docstring_meanings(cls: type) -> dict[str, str]:
    """Field name -> its entry in the class docstring's ``Attributes:`` section."""
    doc = inspect.getdoc(cls) or ""
    lines = doc.splitlines()
    if "Attributes:" not in lines:
        return {}
    entries: list[tuple[list[str], str]] = []
    indent = 0
    for line in lines[lines.index("Attributes:") + 1 :]:
        if line and not line.startswith(" "):
            break  # the next section
        match = _ATTRIBUTE_LINE.match(line)
        if match is not None and (not entries or len(match.group(1)) <= indent):
            indent = len(match.group(1))
            names = [name.strip() for name in match.group(2).split(",")]
            entries.append((names, match.group(3).strip()))
        elif entries and line.strip():
            names, text = entries[-1]
            entries[-1] = (names, f"{text} {line.strip()}")
    return {name: text for names, text in entries for name in names}


@cache
def field_meanings(cls: type) -> dict[str, str]:
    """Field name -> meaning, for ``cls`` and the classes it inherits fields from."""
    meanings: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            meanings.update({**_docstring_meanings(klass), **_comment_meanings(klass)})
    return meanings


def _group_meaning(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def describe_keys(
    config: Any, prefix: str = "", also_from: tuple[type, ...] = ()
) -> Iterator[KeyHelp]:
    """The rows of ``config`` (a dataclass instance), groups walked after their header.

    ``also_from``: classes documenting fields of the same name that ``config``'s class
    passes on (a command's keys that become a library's settings).
    """
    meanings: dict[str, str] = {}
    for source in (*also_from, type(config)):
        meanings.update(field_meanings(source))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        key = f"{prefix}{field.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            meaning = meanings.get(field.name) or _group_meaning(type(value))
            yield KeyHelp(f"{key}.*", "", meaning)
            yield from describe_keys(value, prefix=f"{key}.")
        else:
            yield KeyHelp(key, _shown(value), meanings.get(field.name, ""))


def _shown(value: Any) -> str:
    """A value as it is typed on the command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_shown(item) for item in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ",".join(f"{k}: {_shown(v)}" for k, v in value.items()) + "}" if value else "{}"
        )
    return str(value)


def format_help(usage: str, summary: str, rows: list[KeyHelp], heading: str) -> str:
    """The help text: usage, what the command does, and one folded row per key."""
    width = min(shutil.get_terminal_size((100, 24)).columns, _MAX_WIDTH)
    key_width = min(max((len(row.key) for row in rows), default=0), 30)
    value_width = min(max((len(row.value) for row in rows), default=0), 16)
    lines = [f"usage: {usage}", "", *textwrap.wrap(summary, width=width), ""]
    if not rows:
        return "\n".join([*lines, "This command takes no keys."]) + "\n"
    lines.append(heading)
    for row in rows:
        head = f"  {row.key:<{key_width}}  {row.value:<{value_width}}  "
        if len(row.key) > key_width or len(row.value) > value_width:  # meaning below it
            lines.append(head.rstrip())
            head = " " * (key_width + value_width + 6)
        indent = " " * (key_width + value_width + 6)
        text = row.meaning.replace("``", "") or "-"  # docstrings' literal markup
        folded = textwrap.wrap(
            text, width=width, initial_indent=head, subsequent_indent=indent
        ) or [head.rstrip()]
        lines.extend(folded)
    return "\n".join(lines) + "\n"
