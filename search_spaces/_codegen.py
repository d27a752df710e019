"""Pieces shared by the spaces' code generators.

Only validated values reach generated text: numbers go through :func:`code_int` /
:func:`code_float`, which accept nothing but real ints and finite floats, so no text
from stored data can reach the source through a number.
"""

from __future__ import annotations

import inspect
import math
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

LOAD_WEIGHTS = [
    "    model = build_network()",
    '    model.load_state_dict(safetensors.torch.load_file("weights.safetensors"))',
]
TORCH_IMPORTS = ["import torch", "import torch.nn.functional as F", "from torch import nn"]


def code_int(value: Any) -> str:
    if type(value) is not int:  # bool and numpy ints are refused too
        raise TypeError(f"expected an int for generated code, got {type(value).__name__}")
    return str(value)


def code_float(value: Any) -> str:
    if type(value) is not float or not math.isfinite(value):
        raise TypeError(f"expected a finite float for generated code, got {value!r}")
    return repr(value)


def module_header(summary: str, about: str, description: str, notes: Sequence[str]) -> str:
    """The module docstring (``summary``; ``about`` then the one-line ``description``
    wrapped at its spaces; ``notes``; how to load exported weights) and torch's imports."""
    wrapped = textwrap.wrap(
        description,
        width=92,
        break_on_hyphens=False,
        break_long_words=False,
        initial_indent="    ",
        subsequent_indent="    ",
    )
    lines = [f'"""{summary}', "", about, "", *wrapped, "", *notes, "", *LOAD_WEIGHTS, '"""']
    return "\n".join([*lines, "", "from __future__ import annotations", "", *TORCH_IMPORTS])


def assemble(header: str, exported: Iterable[Any], builder: Sequence[str]) -> str:
    """``header``, the source of each ``exported`` class or function (verbatim), then the
    ``builder`` lines, two blank lines apart."""
    helpers = [textwrap.dedent(inspect.getsource(obj)) for obj in exported]
    parts = [header, *helpers, "\n".join(builder)]
    return "\n\n\n".join(part.strip("\n") for part in parts) + "\n"
