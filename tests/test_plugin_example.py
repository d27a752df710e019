"""The out-of-tree plug-in example, examples/nas_lookup_example: a tabular benchmark (a
search space and an evaluator) that nas finds through its entry points.

These tests need the example installed, as CI does first:

    pip install -e examples/nas_lookup_example

Without it they fail (never skip) and say so.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import optuna
import pytest

pytestmark = pytest.mark.e2e  # real searches, processes or servers: the end-to-end tier

INSTALL = "pip install -e examples/nas_lookup_example"
SEARCH = ["search", "space=toy_cells", "evaluator=lookup"]
STUDY = "study=toy_cells-digits"  # the default name: <space>-<dataset>
TIMEOUT = 600  # guards against hangs only; a lookup search takes seconds


@pytest.fixture
def example() -> ModuleType:
    """The installed example package; a failure with the install command if it is missing."""
    try:
        import nas_lookup_example
    except ImportError as error:
        pytest.fail(f"The plug-in example is not installed ({error}); run: {INSTALL}")
    return nas_lookup_example


def nas(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``nas ARGS`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "nas", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def storage(tmp_path: Path) -> str:
    return f"storage=sqlite:///{tmp_path}/s.db"


def load(tmp_path: Path) -> optuna.Study:
    return optuna.load_study(study_name="toy_cells-digits", storage=f"sqlite:///{tmp_path}/s.db")


def finished(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return study.get_trials(deepcopy=False, states=done)


def test_the_space_keeps_the_contract(example: ModuleType, tmp_path: Path) -> None:
    from search_spaces.contract import check_space

    run = check_space(example.ToyCellSpace(), tmp_path)
    # A lookup table builds no network and exports no code: those checks are skipped.
    assert run == ["round_trip", "sampling_uses_only_the_trial", "decode_rejects_garbage"]


def test_decode_rejects_what_is_not_in_the_space(example: ModuleType) -> None:
    from nas.core.errors import ArchitectureError

    space = example.ToyCellSpace()
    assert space.decode({"ops": ["skip", "conv3x3", "none", "avgpool3x3"]}) == (
        "skip",
        "conv3x3",
        "none",
        "avgpool3x3",
    )
    for bad in (["skip"] * 3, ["skip"] * 5, ["skip", "conv5x5", "none", "none"], [[1]] * 4):
        with pytest.raises(ArchitectureError):
            space.decode({"ops": bad})


def test_the_table_covers_the_space_with_real_results(example: ModuleType) -> None:
    import itertools

    table = example.load_table()
    assert set(table) == set(itertools.product(example.OPS, repeat=len(example.EDGES)))
    assert table[("none",) * 4]["accuracy"] == pytest.approx(0.1)  # chance on 10 classes
    assert max(row["accuracy"] for row in table.values()) > 0.9
    assert all(row["params"] > 0 and row["flops"] > 0 for row in table.values())


def test_the_evaluator_rejects_what_the_table_lacks(example: ModuleType) -> None:
    from nas.core.errors import CandidateRejected
    from nas.core.settings import NoSettings

    evaluator = example.LookupEvaluator(NoSettings(), context=None)
    assert evaluator.evaluate(("none",) * 4, trial=None)["accuracy"] == pytest.approx(0.1)
    for missing in (("none",) * 3, ["none"] * 4):
        with pytest.raises(CandidateRejected, match="not in the table"):
            evaluator.evaluate(missing, trial=None)


def test_nas_finds_the_plugins_through_entry_points(example: ModuleType, tmp_path: Path) -> None:
    from evaluators import get_evaluator_class, list_evaluators
    from search_spaces import get_space_class

    assert get_space_class("toy_cells") is example.ToyCellSpace
    assert get_evaluator_class("lookup") is example.LookupEvaluator
    assert "lookup" in list_evaluators()
    done = nas("spaces", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert any(line.split()[:1] == ["toy_cells"] for line in done.stdout.splitlines())


def test_a_search_reads_the_table(example: ModuleType, tmp_path: Path) -> None:
    done = nas(*SEARCH, "trials=20", storage(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = finished(load(tmp_path))
    assert len(trials) == 20
    table = example.load_table()
    for trial in trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs
        arch = tuple(trial.user_attrs["arch"]["ops"])
        assert trial.values == [table[arch]["accuracy"]]
        assert trial.user_attrs["params"] == table[arch]["params"]
        assert trial.user_attrs["flops"] == table[arch]["flops"]


def test_a_lookup_search_does_not_import_torch(example: ModuleType, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from nas.cli import main

        code = main({[*SEARCH, "trials=3", storage(tmp_path)]!r})
        assert code == 0, code
        assert "torch" not in sys.modules, "a lookup search imported torch"
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_multi_objective_search_shows_its_pareto_front(
    example: ModuleType, tmp_path: Path
) -> None:
    objectives = ["objectives=[accuracy,params]", "strategy=nsga2"]
    done = nas(*SEARCH, "trials=16", *objectives, storage(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    study = load(tmp_path)
    assert len(finished(study)) == 16
    shown = nas("show", STUDY, storage(tmp_path), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "Pareto front" in shown.stdout
    # Every row of the front (one per architecture) and nothing else.
    front = {t.user_attrs["arch_str"] for t in study.best_trials}
    rows = {arch for t in finished(study) if (arch := t.user_attrs["arch_str"]) in shown.stdout}
    assert front and rows == front, shown.stdout


def test_export_says_the_space_exports_no_code(example: ModuleType, tmp_path: Path) -> None:
    assert nas(*SEARCH, "trials=1", storage(tmp_path), cwd=tmp_path).returncode == 0
    out = tmp_path / "net.py"
    done = nas("export", STUDY, "trial=best", f"out={out}", storage(tmp_path), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "exports no code" in lines[0], done.stderr
    assert not out.exists()


def test_a_search_resumes_with_a_larger_budget(example: ModuleType, tmp_path: Path) -> None:
    assert nas(*SEARCH, "trials=20", storage(tmp_path), cwd=tmp_path).returncode == 0
    numbers_before = {t.number for t in finished(load(tmp_path))}
    assert len(numbers_before) == 20
    done = nas(*SEARCH, "trials=25", storage(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    study = load(tmp_path)
    assert len(study.trials) == 25
    assert {t.number for t in finished(study)} - numbers_before == set(range(20, 25))
