"""Checkpoints: round trip, atomic replacement, and refusal of unsafe or broken files."""

from __future__ import annotations

import os
import pickle
import shlex
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from nas.core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from nas.core.errors import NasError


def _payload() -> dict[str, Any]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "epoch": 3,
        "lr": 0.025,
        "name": "toy",
        "rng": torch.get_rng_state(),
        "reports": [{"epoch": 1, "loss": 2.5}, {"epoch": 2, "loss": 1.5}],
        "nothing": None,
        "flags": [True, False],
    }


def _assert_equal(ours: Any, theirs: Any) -> None:
    if isinstance(ours, torch.Tensor):
        assert isinstance(theirs, torch.Tensor) and torch.equal(ours, theirs)
    elif isinstance(ours, dict):
        assert isinstance(theirs, dict) and ours.keys() == theirs.keys()
        for key in ours:
            _assert_equal(ours[key], theirs[key])
    elif isinstance(ours, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for mine, other in zip(ours, theirs, strict=True):
            _assert_equal(mine, other)
    else:
        assert ours == theirs and type(ours) is type(theirs)


def test_round_trip_creates_folders_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "run.ckpt"
    payload = _payload()
    save_checkpoint(path, payload)
    _assert_equal(load_checkpoint(path), payload)
    assert os.listdir(path.parent) == ["run.ckpt"]
    # The loaded state dicts feed straight back into fresh objects.
    loaded = load_checkpoint(path)
    nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).load_state_dict(loaded["model"])


def test_overwrite_replaces_the_old_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, {"epoch": 1})
    save_checkpoint(path, {"epoch": 2})
    assert load_checkpoint(path) == {"epoch": 2}


def test_failed_write_leaves_the_old_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, {"epoch": 1})
    before = path.read_bytes()

    def crash_half_way(obj: object, stream: Any, *args: Any, **kwargs: Any) -> None:
        stream.write(b"PK\x03\x04 half a zip file")  # as if the process died mid-write
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"epoch": 2})
    assert path.read_bytes() == before
    assert load_checkpoint(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["run.ckpt"]  # the temporary file is gone


@pytest.mark.parametrize("bad", [lambda: None, {"nested": [object()]}, {(1, 2): 3}])
def test_unserialisable_payload_is_refused_before_writing(tmp_path: Path, bad: Any) -> None:
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, {"epoch": 1})
    with pytest.raises(TypeError, match="payload"):
        save_checkpoint(path, {"epoch": 2, "bad": bad})
    assert load_checkpoint(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["run.ckpt"]


class _Exploit:
    """Unpickling this runs a shell command: the classic malicious-checkpoint payload."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_malicious_pickle_is_refused_without_running(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "run.ckpt"
    payload = {"epoch": 1, "exploit": _Exploit(marker)}
    if writer == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))  # torch.load's own protocol
    else:
        torch.save(payload, path)  # the same pickle inside torch's zip container
    with pytest.raises(CheckpointError, match="Delete it"):
        load_checkpoint(path)
    assert not marker.exists()
    # Control: the payload is live, plain unpickling would have run the command.
    pickle.loads(pickle.dumps(_Exploit(tmp_path / "control")))
    assert (tmp_path / "control").exists()


def test_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, _payload())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert str(path) in message and "Delete it to restart" in message and "\n" not in message
    assert isinstance(caught.value, NasError)


@pytest.mark.parametrize("content", [b"", b"garbage"])
def test_garbage_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "run.ckpt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="truncated, corrupt"):
        load_checkpoint(path)


def test_non_dict_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match="holds a list, not a dict"):
        load_checkpoint(path)


def test_missing_checkpoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="No checkpoint file"):
        load_checkpoint(tmp_path / "absent.ckpt")
