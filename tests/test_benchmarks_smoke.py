"""The benchmarks still run: each one at toy size, checking the rows' shape, not speed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.e2e  # real searches, processes or servers: the end-to-end tier

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
# The scripts import their shared table printer as a sibling module, as when run directly.
sys.path.insert(0, str(BENCHMARKS))


def _load(name: str) -> ModuleType:
    # benchmarks/ is a folder of scripts, not a package.
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(900)
def test_lookup_overhead_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """Needs the example plug-in (pip install -e examples/nas_lookup_example), as CI has."""
    rows = _load("lookup_overhead").main(["--trials", "20", "--repeats", "2"])
    assert [(row["variant"], row["trials"]) for row in rows] == [("optuna", 20), ("nas", 20)]
    assert rows[0]["ratio"] == 1.0 and rows[1]["ratio"] > 0
    assert all(0.1 <= row["best"] <= 1.0 for row in rows)  # accuracies from the table
    assert "last ms/trial" in capsys.readouterr().out


@pytest.mark.timeout(900)
def test_store_overhead_runs(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("store_overhead").main(["--trials", "3", "--epochs", "1", "--repeats", "1"])

    assert [row["variant"] for row in rows] == ["optuna", "nas", "nas+weights"]
    for row in rows:
        assert row["trials"] == 3
        assert row["total_s"] > 0 and row["ms_per_trial"] > 0 and row["ratio"] > 0
    assert rows[0]["ratio"] == 1.0
    assert "ms/trial" in capsys.readouterr().out


@pytest.mark.timeout(900)
def test_standalone_throughput_runs(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("standalone_throughput").main(["--trials", "1", "--epochs", "1"])

    assert [row["variant"] for row in rows] == ["nas", "plain"]
    for row in rows:
        assert (row["trials"], row["epochs"]) == (1, 1)
        assert row["s_per_trial"] > 0 and row["images_per_s"] > 0 and row["ratio"] > 0
        assert 0.0 <= row["val_acc"] <= 1.0
    assert rows[1]["ratio"] == 1.0
    assert "nas/plain" in capsys.readouterr().out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("space", ["bignas", "vit_resnas"])
def test_supernet_training_step_runs(space: str, capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["--space", space, "--steps", "2", "--warmup", "1", "--batch", "16"]
    rows = _load("supernet_training_step").main(arguments)
    assert [row["variant"] for row in rows] == ["largest", "smallest", "sandwich", "multi_arch"]
    assert [row["children"] for row in rows] == [1, 1, 4, 4]
    for row in rows:
        assert row["supernet_ms"] > 0 and row["static_ms"] > 0 and row["ratio"] > 0
    targets = [1.03, 1.10] if space == "bignas" else [1.05, None]
    assert [row["target"] for row in rows] == [*targets, None, None]
    assert isinstance(rows[0]["passed"], bool) and rows[2]["passed"] is None
    out = capsys.readouterr().out
    assert "supernet ms" in out and "vs alone" in out


@pytest.mark.timeout(900)
def test_supernet_ranking_runs(capsys: pytest.CaptureFixture[str]) -> None:
    # ViT-ResNAS's tiny supernet trains in a third of BigNAS's time; the code is shared.
    rows = _load("supernet_ranking").main(
        [
            "--space",
            "vit_resnas",
            "--children",
            "3",
            "--supernet-epochs",
            "1",
            "--epochs-alone",
            "1",
        ]
    )

    *children, summary = rows
    assert [row["child"] for row in children] == ["smallest", "largest", "random-1"]
    assert len({row["arch"] for row in children}) == 3
    for row in children:
        assert row["flops"] > 0 and row["alone_s"] > 0
        assert 0.0 <= row["inherited_acc"] <= 1.0 and 0.0 <= row["alone_acc"] <= 1.0
    assert children[0]["flops"] < children[2]["flops"] < children[1]["flops"]
    assert summary["child"] == "summary"
    assert (summary["supernet_epochs"], summary["epochs_alone"]) == (1, 1)
    assert summary["supernet_s"] > 0 and summary["cost_ratio"] > 0
    assert summary["biggest_gap"] == summary["biggest_inherited"] - summary["biggest_alone"]
    assert "Kendall tau-b" in capsys.readouterr().out


@pytest.mark.timeout(900)
def test_lcpfn_speed_runs(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("lcpfn_speed").main(["--curves", "10", "--repeats", "1", "--sizes", "small"])

    assert [(row["size"], row["mode"]) for row in rows] == [
        ("small", "sorted chunks"),
        ("small", "one padded pass"),
    ]
    for row in rows:
        assert row["curves"] == 10 and row["params"] > 0
        assert row["seconds"] > 0 and row["curves_per_s"] > 0 and row["ratio"] > 0
        assert row["target_s"] == 0.01 and isinstance(row["passed"], bool)
    assert "curves/s" in capsys.readouterr().out


@pytest.mark.timeout(900)
def test_lcpfn_quality_runs(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("lcpfn_quality").main(
        ["--curves", "50", "--calibration", "50", "--mcmc-curves", "2", "--steps", "40"]
    )

    methods = ["lcpfn", "last", "pow3", "mcmc", "lcpfn (mcmc subset)"]
    assert [row["method"] for row in rows] == methods * 4
    assert [row["cutoff"] for row in rows[:: len(methods)]] == [10, 20, 40, 80]
    for row in rows:
        assert row["mse"] >= 0 and 0 <= row["coverage90"] <= 1 and row["s_per_curve"] > 0
    assert "x lcpfn" in capsys.readouterr().out


def test_lcpfn_quality_on_real_curves_scores_the_calibrated_network_and_as_trained() -> None:
    rows = _load("lcpfn_quality").main(["--real", "--threads", "1"])

    methods = ["lcpfn", "lcpfn as trained", "last", "pow3"]
    assert [row["method"] for row in rows] == methods * 4
    by_cut = [rows[i : i + len(methods)] for i in range(0, len(rows), len(methods))]
    assert [cut[0]["cutoff"] for cut in by_cut] == [2, 5, 10, 15]
    calibrated, trained = by_cut[-1][0], by_cut[-1][1]
    # The calibration narrows late intervals and leaves the median's ranking alone.
    assert calibrated["width90"] < trained["width90"]
    assert calibrated["spearman_median"] == pytest.approx(trained["spearman_median"], abs=1e-3)


def test_pow3_fit_recovers_a_power_law() -> None:
    import numpy as np

    quality = _load("lcpfn_quality")
    x = np.arange(1, 21, dtype=np.float64)
    prefix = np.stack([0.9 - 0.5 * x**-0.7, 0.6 - 0.3 * x**-2.0])  # exact pow3 curves
    expected = np.array([0.9 - 0.5 * 100**-0.7, 0.6 - 0.3 * 100**-2.0])
    np.testing.assert_allclose(quality.pow3_fit(prefix), expected, atol=2e-3)


@pytest.mark.timeout(900)
def test_early_stopping_replay_runs(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("early_stopping_replay").main(["--orders", "1", "--pruners", "none", "lcpfn"])

    none, lcpfn = rows
    assert none["pruner"] == "none" and none["saved"] == 1.0 and none["regret_pp"] == 0.0
    assert lcpfn["pruner"] == "lcpfn" and lcpfn["variant"].startswith("threshold ")
    assert lcpfn["saved"] >= 1.0 and lcpfn["regret_pp"] >= 0.0 and lcpfn["tuning_saved"] >= 1.0
    out = capsys.readouterr().out
    assert "judged on the held-out half" in out and "regret pp" in out


def test_the_replay_chooses_the_most_saving_variant_within_the_regret() -> None:
    choose = _load("early_stopping_replay").choose
    rows = [
        {"variant": "a", "saved": 2.0, "regret_pp": 0.1},
        {"variant": "b", "saved": 5.0, "regret_pp": 0.9},
        {"variant": "c", "saved": 3.0, "regret_pp": 0.4},
    ]
    assert choose(rows, 0.5)["variant"] == "c"
    assert choose(rows, 0.05)["variant"] == "a"  # none within: the least regret


def test_record_corpus_studies_are_valid_searches(tmp_path: Path) -> None:
    from nas.config import compose_search

    corpus = _load("record_corpus")
    args = corpus._parse(["--trials", "3", "--epochs", "5"])
    for family in corpus.FAMILIES:
        for setting in corpus.SETTINGS:
            config = compose_search(corpus.study_overrides(args, family, setting))
            assert (config.trials, config.epochs, config.pruner) == (3, 5, "none")
            assert config.evaluator == "standalone" and config.strategy == "random"
    assert corpus._parse(["--trials", "bignas=7"]).trials == {
        "nasnet": 20, "bignas": 7, "vit_resnas": 20, "tas": 20
    }  # fmt: skip
    with pytest.raises(SystemExit):
        corpus._parse(["--trials", "nasnet=0"])
    out = tmp_path / "corpus.json.gz"
    storage = f"sqlite:///{tmp_path}/corpus.db"
    argv = ["--families", "tas,vit_resnas", "--settings", "base,smooth",
            "--trials", "tas=2,vit_resnas=2", "--reports-per-epoch", "2",
            "--epochs", "2", "--out", str(out), "--storage", storage]  # fmt: skip
    assert corpus.main(argv) == 0
    recorded = corpus.load_corpus(out)
    curves = recorded["curves"]
    assert recorded["reports_per_epoch"] == 2
    assert len(curves) == 8 and all(len(c["curve"]) == 4 for c in curves)
    for family in ("tas", "vit_resnas"):  # each family split in equal halves
        splits = [c["split"] for c in curves if c["family"] == family]
        assert sorted(splits) == ["held-out", "held-out", "tuning", "tuning"]
    assert recorded["git_commit"] and "record_corpus.py --families" in recorded["command"]
    assert corpus.main(argv) == 0  # a finished recording only rewrites the file
    assert corpus.load_corpus(out)["curves"] == curves


def _script(name: str, *args: str) -> str:
    """Run a benchmark as a script (its worker processes must import it by name); stdout."""
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        timeout=880,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


@pytest.mark.timeout(900)
def test_workers_throughput_runs() -> None:
    out = _script("workers_throughput", "--trials", "4", "--workers", "2", "--postgres", "")

    rows = [line.split() for line in out.splitlines() if line.startswith("sqlite")]
    assert [row[:3] for row in rows] == [["sqlite", "2", "optuna"], ["sqlite", "2", "nas"]]
    finished, failures = rows[1][-2:]
    assert (finished, failures) == ("4", "0")  # nas: exactly the budget, no failure
    assert "trials/s" in out


@pytest.mark.timeout(900)
def test_bignas_gpu_runs_its_cpu_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    # The GPU rows need a GPU; the CPU baseline is the same code path.
    rows = _load("bignas_gpu").main(
        ["--runs", "cpu", "--extra", "trials=2", "supernet.epochs=1", "supernet.batch_size=256"]
    )

    assert [row["run"] for row in rows] == ["cpu"]
    assert rows[0]["trials"] == 2 and rows[0]["ratio"] == 1.0
    assert 0 < rows[0]["supernet_s"] < rows[0]["wall"]
    assert "speed-up vs cpu" in capsys.readouterr().out


@pytest.mark.timeout(900)
def test_published_models_runs(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("published_models").main(["--only", "Mobile"])
    assert [row["model"] for row in rows] == ["NASNet-A Mobile 4@1056"]
    assert abs(float(rows[0]["params_ratio"]) - 1) <= 0.01
    assert "paper MACs" in capsys.readouterr().out


def test_latency_noise_runs(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("latency_noise").main(["--measurements", "2"])
    assert rows[0]["threads"] == 1
    assert all(row["spread"] >= 1 and row["median"] > 0 for row in rows)
    assert "max/min" in capsys.readouterr().out


def test_strategy_comparison_runs(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _load("strategy_comparison").main(
        ["--trials", "4", "--seeds", "1", "--supernet-epochs", "1", "--max-mflops", "3"]
    )
    assert [row["strategy"] for row in rows] == ["evolution", "tpe", "random"]
    for row in rows:
        assert 0.0 <= row["mean_best"] <= 1.0 and 0 <= row["feasible"] <= 4
    assert rows[2]["vs_random"] == 0.0
    assert "vs random" in capsys.readouterr().out


def test_tas_pruning_runs(capsys: pytest.CaptureFixture[str]) -> None:
    results = _load("tas_pruning").main(
        ["--seeds", "1", "--epochs", "1", "--search-epochs", "1", "--teacher-epochs", "1",
         "--step-presets", "digits", "--step-batch", "8"]
    )  # fmt: skip
    assert [row["method"] for row in results["a"]] == ["tas", "uniform", "l1"]
    assert all(0 < row["ratio"] <= 0.5 + 0.05 for row in results["a"][1:])
    assert results["b"][0]["ratio"] > 0
    assert [row["method"] for row in results["c"]] == ["distill", "plain"]
    assert "vs uniform" in capsys.readouterr().out


def test_evonorm_runs(capsys: pytest.CaptureFixture[str]) -> None:
    results = _load("evonorm").main(
        ["--trials", "4", "--c-trials", "4", "--seeds", "1", "--epochs", "1", "--repeats", "2",
         "--warmup", "1", "--shapes", "8x16x4x4", "--host-batch", "8"]
    )  # fmt: skip
    layers = [(row["layer"], row["shape"]) for row in results["a"]]
    assert layers == [
        ("evonorm-s0", "8x16x4x4"),
        ("evonorm-b0", "8x16x4x4"),
        *((name, "resnet b8") for name in ("bn-relu", "gn-relu", "evonorm-b0", "evonorm-s0")),
    ]
    for row in results["a"]:
        assert row["graph"] > 0 and row["formula"] > 0 and row["interpreted"] > 0
        assert row["graph_ratio"] > 0 and row["interp_ratio"] > 0
    assert all(row["diff"] < 1e-5 for row in results["a"][:2])  # the same function
    settings = ["screen+dedup", "no screen", "no dedup", "both off"]
    assert [row["setting"] for row in results["b"]] == settings
    assert [row["dedup"] for row in results["b"]] == [True, True, False, False]
    for row in results["b"]:
        assert row["trials"] == 4 and row["wall"] > 0 and row["per_min"] > 0
        assert row["complete"] + sum(row[p] for p in ("invalid", "non-finite", "stability",
                                                      "quality", "other")) == 4  # fmt: skip
        assert row["evaluated"] == row["distinct"] + row["repeats"] <= 4
        assert row["repeat_s"] >= 0
    assert results["b"][-1]["ratio"] == 1.0
    assert all(row["stability"] == row["quality"] == 0 for row in results["b"][1::2])
    # De-duplication on: evolution never breeds a layer it has evaluated, nor reuses one.
    assert all(row["repeats"] == row["reused"] == 0 for row in results["b"][:2])
    assert [row["strategy"] for row in results["c"]] == ["evolution", "random"]
    assert results["c"][-1]["vs_random"] == 0.0 or results["c"][-1]["found"] == 0
    assert results["c"][0]["invalid"] == 0  # evolution redraws the graphs the space refuses
    assert all(row["buildable"] + row["invalid"] == 4 for row in results["c"])
    out = capsys.readouterr().out
    assert "s/distinct vs both off" in out and "cand/min vs both off" in out


@pytest.mark.timeout(900)
def test_threads_runs(capsys: pytest.CaptureFixture[str]) -> None:
    # The shortest default study: two threads on busy cores are what the script shows slow.
    rows = _load("threads").main(["--spaces", "evonorm", "--loads", "loaded"])
    assert [(row["space"], row["load"]) for row in rows] == [("evonorm", "loaded")]
    row = rows[0]
    assert row["one_s"] > 0 and row["all_s"] > 0 and row["one_cpu_s"] > 0
    assert row["ratio"] == pytest.approx(row["all_s"] / row["one_s"])
    assert "all/1" in capsys.readouterr().out
