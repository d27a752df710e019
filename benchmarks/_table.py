"""The one table printer of the benchmark scripts: a title line, a header, a rule, rows."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    """One column: its header, the row's value (a key or a function of the row), and a
    format spec such as ``">8.2f"`` whose alignment and width the header shares."""

    header: str
    value: str | Callable[[Mapping[str, Any]], Any]
    spec: str

    def cell(self, row: Mapping[str, Any]) -> str:
        value = self.value(row) if callable(self.value) else row[self.value]
        return format(value, self.spec)

    def title(self) -> str:
        match = re.match(r"([<>^]?)(\d*)", self.spec)
        align, width = match.groups() if match else ("", "")
        return format(self.header, f"{align or '<'}{width}")


def print_table(title: str, columns: Sequence[Column], rows: Sequence[Mapping[str, Any]]) -> None:
    print(title)
    header = " ".join(column.title() for column in columns)
    print(header)
    print("-" * len(header))
    for row in rows:
        print(" ".join(column.cell(row) for column in columns))
