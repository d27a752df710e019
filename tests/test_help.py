"""`nas COMMAND --help` and `--cfg`: each command's keys, values and meanings, from its schema."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from nas.cli import COMMANDS, main
from nas.config import compose_search, to_container
from nas.help import describe_keys, field_meanings


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def rows(help_text: str) -> dict[str, str]:
    """key -> the rest of its first line, from a help text."""
    found = {}
    for line in help_text.splitlines():
        match = re.match(r"^  (\S+)\s+(.*)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        (("search",), {"space": "nasnet", "trials": "16", "train.lr": None, "tpe.*": None}),
        (("search", "space=bignas"), {"space": "bignas", "trials": "40", "supernet.epochs": "30"}),
        (("lcpfn", "train"), {"steps": "2000", "corpus_share": "0.5", "size": "small"}),
        (("export",), {"trial": "best", "out": "net.py", "storage": "null"}),
        (("worker",), {"study": "null", "device": "auto", "worker_name": "null"}),
    ],
)
def test_help_lists_the_keys_with_their_values_and_meanings(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], keys: dict[str, str | None]
) -> None:
    code, out, err = run(capsys, *args, "--help")
    assert code == 0 and err == ""
    assert out.startswith(f"usage: nas {args[0]} ")
    listed = rows(out)
    for key, value in keys.items():
        assert key in listed, (key, out)
        if value is not None:
            assert listed[key].split()[0] == value, (key, listed[key])


def test_the_values_shown_are_the_presets_and_the_keys_given(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, out, _ = run(capsys, "search", "space=bignas", "trials=7", "supernet.lr=0.3", "-h")
    listed = rows(out)
    assert listed["trials"].split()[0] == "7"
    assert listed["supernet.lr"].split()[0] == "0.3"
    assert listed["strategy"].split()[0] == "nsga2"  # studies/bignas.yaml's, not the schema's


@pytest.mark.parametrize(
    "args",
    [
        ("search", f"space={space}", f"strategy={strategy}", "objectives=[accuracy]")
        for space in ("nasnet", "bignas", "vit_resnas", "tas", "evonorm")
        for strategy in ("tpe", "nsga2", "evolution", "coarse_to_fine")
        if strategy != "coarse_to_fine" or space == "bignas"
    ]
    + [("search", "evaluator=supernet", "space=bignas"), ("named", "space=nasnet")]
    + [("export", "named=nasnet-a", "space=nasnet")]
    + [(name,) for name in COMMANDS],
)
def test_every_key_of_the_built_in_commands_has_a_meaning(args: tuple[str, ...]) -> None:
    command = COMMANDS[args[0]]
    if command.keys is None:
        return
    config = command.keys(list(args[1:]))
    undocumented = [
        row.key
        for row in describe_keys(config, also_from=command.documented_in())
        if not row.meaning
    ]
    assert undocumented == [], f"document these keys where they are defined: {undocumented}"


def test_commands_without_keys_say_so_and_every_command_has_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in COMMANDS:
        code, out, _ = run(capsys, name, "--help")
        assert code == 0 and out.startswith(f"usage: nas {name}"), name
    _, out, _ = run(capsys, "spaces", "--help")
    assert "takes no keys" in out


def test_cfg_prints_the_composed_config_and_runs_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["space=bignas", "trials=3", "supernet.epochs=1"]
    code, out, err = run(capsys, "search", *args, "--cfg")
    assert code == 0 and err == ""
    assert yaml.safe_load(out) == to_container(compose_search(args))
    assert list(tmp_path.iterdir()) == []  # no store, no artifacts, no data


def test_help_with_a_bad_value_is_the_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "search", "trials=many", "--help")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "trials" in err and "Traceback" not in err
    code, _, err = run(capsys, "spaces", "--cfg")
    assert code == 2 and "takes no keys" in err


def test_meanings_come_from_comments_and_attributes_sections() -> None:
    @dataclasses.dataclass
    class Documented:
        """A settings group.

        Attributes:
            width, depth: How big, in units
                of blocks.
            rate: Documented here and commented below; the comment wins.
        """

        width: int = 1
        depth: int = 2
        # A comment above a field,
        # over two lines.
        height: int = 3
        rate: float = 0.5  # the comment

    assert field_meanings(Documented) == {
        "width": "How big, in units of blocks.",
        "depth": "How big, in units of blocks.",
        "height": "A comment above a field, over two lines.",
        "rate": "the comment",
    }
