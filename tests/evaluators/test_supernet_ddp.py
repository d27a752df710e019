"""Data-parallel supernet training on the CPU (Gloo, 2 processes): the same weights as one
process with the same global batch, BN over the global batch, the torchrun search
end to end, and the refused combinations."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import supernet_ddp_helper as helper
import torch

from evaluators.distributed import DataParallelContext, init_from_torchrun
from evaluators.weight_sharing import SUMMARY_ATTR
from nas.artifacts import checkpoint_path as supernet_checkpoint_path
from nas.cli import main
from nas.core.errors import ConfigError

pytestmark = pytest.mark.e2e  # real searches, processes or servers: the end-to-end tier

ROOT = Path(__file__).resolve().parents[2]
HELPER = Path(helper.__file__).resolve()
# A hung collective fails the test instead of blocking the suite.
LIMIT_S = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    """What torchrun sets for each process, plus this checkout first on the path."""
    return {
        **os.environ,
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(world),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }


def _run_ranks(mode: str, out: Path, world: int = 2, *extra: str) -> list[str]:
    """Run the helper as ``world`` ranks; their outputs (each must exit 0)."""
    port = _free_port()
    processes = [
        subprocess.Popen(
            [sys.executable, str(HELPER), mode, str(out), *extra],
            env=_rank_env(rank, world, port),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in range(world)
    ]
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=LIMIT_S)[0])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
    return outputs


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread, as each rank has: on a busy 2-core machine, spinning OpenMP
    threads make the single-process reference run ~15x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# A parameter that training moves, per space: the classifier's weight.
CLASSIFIER = {"bignas": "classifier.weight", "vit_resnas": "head.weight"}


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("space", ["bignas", "vit_resnas"])
def test_two_processes_train_the_weights_of_one(tmp_path: Path, space: str) -> None:
    """The sandwich rule (BigNAS) and multi-architectural sampling (ViT-ResNAS): two
    processes, each with a share of every batch, train what one process trains."""
    _run_ranks("train", tmp_path, 2, space)
    alone, losses = helper.train(tmp_path / "alone.ckpt", space_name=space)
    expected = alone.state_dict()
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    worst = 0.0
    for rank in ranks:
        assert rank["state"].keys() == expected.keys()
        for name, value in expected.items():
            theirs = rank["state"][name]
            # Float sums in another order (all-reduce, BN statistics): ~1e-7 observed.
            torch.testing.assert_close(theirs, value, atol=1e-5, rtol=1e-4, msg=name)
            if value.is_floating_point():
                worst = max(worst, float((theirs - value).abs().max()))
        assert rank["losses"] == pytest.approx([r.loss for r in losses], rel=1e-5)
    print(f"max abs weight difference, 2 processes vs 1: {worst:.3g}")
    # Training moved the weights (a test of equal initial weights would pass otherwise).
    torch.manual_seed(0)
    initial = helper.create_space(space, preset="tiny").supernet(helper.tiny_data().spec)
    probe = CLASSIFIER[space]
    assert not torch.allclose(initial.state_dict()[probe], expected[probe])
    # Rank 0's checkpoint resumes in one process as finished: same epochs, same weights.
    resumed, again = helper.train(tmp_path / "supernet.ckpt", space_name=space)
    assert all(r.resumed for r in again) and len(again) == helper.SETTINGS.epochs
    assert torch.equal(resumed.state_dict()[probe], ranks[0]["state"][probe])


def test_synced_batch_norm_uses_global_batch_statistics(tmp_path: Path) -> None:
    outputs = _run_ranks("bn", tmp_path)
    assert all("matches F.batch_norm" in output for output in outputs)


def test_single_process_context_needs_no_process_group() -> None:
    context = DataParallelContext.current()
    assert (context.rank, context.world_size, context.is_main) == (0, 1, True)
    assert not context.distributed
    assert context.broadcast_object({"a": 1}) == {"a": 1}
    with pytest.raises(ValueError, match="rank 2 is not in a world of 2"):
        DataParallelContext(rank=2, world_size=2)


def test_init_outside_torchrun_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="runs under torchrun"):
        init_from_torchrun("cpu")


def _torchrun_search(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={_free_port()}",
            "-m",
            "nas",
            "search",
            *args,
        ],
        cwd=cwd,
        env={**_rank_env(0, 1, 0), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=LIMIT_S,
    )


def test_torchrun_search_trains_one_supernet_then_both_ranks_search(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'ddp.db'}"
    args = [
        "space=bignas",
        "device=cpu",
        f"storage={storage}",
        "supernet.epochs=1",
        "supernet.batch_size=127",
        "supernet.calibration_batches=1",
        "trials=5",
    ]
    done = _torchrun_search(args, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "supernet epoch 1/1" in done.stdout
    study = optuna.load_study(study_name="bignas-digits", storage=storage)
    trials = study.get_trials()
    assert sum(t.state.name == "COMPLETE" for t in trials) == 5
    assert len(study.user_attrs[SUMMARY_ATTR]) == 1
    expected = supernet_checkpoint_path(tmp_path / "artifacts", "bignas-digits")
    assert list(tmp_path.rglob("*.ckpt")) == [expected]  # one, written by rank 0 only
    # Both ranks ran trials as workers (they log to one stdout).
    assert "nas rank1" in done.stdout


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("evaluator=standalone", "evaluator=standalone"),
        ("workers=2", "workers=2"),
        ("backend=ray", "backend=ray"),
    ],
)
def test_torchrun_with_unsupported_settings_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], override: str, named: str
) -> None:
    # Refused before any process group is joined, so one process shows what each rank does.
    monkeypatch.setenv("WORLD_SIZE", "2")
    code = main(["search", "space=bignas", "device=cpu", override])
    err = capsys.readouterr().err
    assert code == 2
    assert named in err and "torchrun" in err and err.count("\n") == 1
