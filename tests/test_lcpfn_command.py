"""`nas lcpfn train`: trains on the prior, writes weights + card, resumes from its checkpoint."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from evaluators.lcpfn import LCPFN, LCPFNConfig, load_lcpfn
from nas.cli import main
from nas.lcpfn_command import SIZES

pytestmark = pytest.mark.e2e  # real searches, processes or servers: the end-to-end tier

ARGS = ["lcpfn", "train", "steps=4", "checkpoint_every=2", "batch_size=8", "out=m.safetensors"]


def test_train_writes_a_loadable_network_and_resumes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(ARGS) == 0
    out = capsys.readouterr().out
    assert "step 4/4" in out
    card = json.loads(Path("m.json").read_text())
    assert card["command"] == "nas " + " ".join(ARGS) and card["settings"]["steps"] == 4
    model = LCPFN(LCPFNConfig(**SIZES["small"]))
    model.load_state_dict(load_file("m.safetensors"), strict=True)
    logits = model.predict([torch.tensor([0.2, 0.4, 0.5])], torch.tensor([10, 100]))
    assert logits.shape == (1, 2, model.config.buckets)

    # Same command again: the finished checkpoint is reused, no step is trained.
    assert main(ARGS) == 0
    assert "step " not in capsys.readouterr().out


def test_fine_tuning_writes_the_corpus_and_its_held_out_scores_into_the_card(
    capsys: pytest.CaptureFixture[str],
) -> None:
    records = [
        {"family": "f", "setting": "s", "split": split, "curve": [0.2, 0.8 + i / 100, 0.85, 0.9]}
        for i, split in enumerate(["tuning", "held-out"] * 4)
    ]
    with gzip.open("corpus.json.gz", "wt", encoding="utf-8") as handle:
        json.dump({"curves": records}, handle)
    args = [*ARGS, "init=shipped", "corpus=corpus.json.gz", "corpus_share=0.5"]
    assert main(args) == 0
    assert "real held-out cutoff 2/4" in capsys.readouterr().out
    card = json.loads(Path("m.json").read_text())
    assert card["init"] == "shipped" and card["settings"]["corpus_share"] == 0.5
    assert card["corpus"]["tuning_curves"] == 4 and len(card["corpus"]["digest"]) == 64
    real = card["real_held_out"]
    assert real["curves"] == 4 and [row["cutoff"] for row in real["scores"]] == [1, 2, 3]
    assert all(-1 <= row["spearman"] <= 1 for row in real["scores"])


def test_calibrate_fits_on_the_fold_networks_and_rewrites_the_card(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import nas.lcpfn_command

    monkeypatch.setattr(nas.lcpfn_command, "HELD_OUT_CURVES", 200)  # a quicker card
    records = [
        {"family": "f", "setting": s, "split": split, "curve": [0.2, 0.8 + i / 100, 0.85, 0.9]}
        for i, (s, split) in enumerate(
            [(s, split) for s in "ab" for split in ["tuning", "tuning", "held-out"]] * 2
        )
    ]
    with gzip.open("corpus.json.gz", "wt", encoding="utf-8") as handle:
        json.dump({"curves": records}, handle)
    tune = ["lcpfn", "train", "steps=2", "batch_size=8", "init=shipped", "corpus=corpus.json.gz"]
    for fold in ("", "0", "1"):
        extra = [f"corpus_fold={fold}"] if fold else []
        assert main([*tune, *extra, f"out=m{fold}.safetensors"]) == 0
    assert json.loads(Path("m0.json").read_text())["corpus"]["fold"] == 0
    capsys.readouterr()

    swapped = ["lcpfn", "calibrate", "weights=m.safetensors", "fold0=m1.safetensors"]
    assert main([*swapped, "fold1=m0.safetensors"]) == 2
    assert "fold0=m1.safetensors was not fine-tuned on fold 0" in capsys.readouterr().err
    assert "calibration" not in json.loads(Path("m.json").read_text())  # card untouched

    tensors = load_file("m1.safetensors")
    tensors["distribution.borders"] = tensors["distribution.borders"] * 0.5
    save_file(tensors, "moved.safetensors")
    Path("moved.json").write_text(Path("m1.json").read_text())
    assert main([*swapped[:3], "fold0=m0.safetensors", "fold1=moved.safetensors"]) == 2
    assert "fold1=moved.safetensors has other bucket borders" in capsys.readouterr().err

    args = [
        "lcpfn",
        "calibrate",
        "weights=m.safetensors",
        "fold0=m0.safetensors",
        "fold1=m1.safetensors",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    # Each fold network judged the other fold's 4 curves from cuts 1, 2 and 3.
    assert "fitted on 24 predictions" in out and "scores calibrated:" in out
    card = json.loads(Path("m.json").read_text())
    assert card["calibration"]["command"] == "nas " + " ".join(args)
    assert card["calibration"]["folds"] == ["m0.safetensors", "m1.safetensors"]
    assert card["uncalibrated"]["real_held_out"]["curves"] == 4
    model = load_lcpfn("m.safetensors")
    assert model.calibration is not None
    assert list(model.calibration.log_stretch) == card["calibration"]["log_stretch"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lcpfn"], "Usage: nas lcpfn train"),
        (["lcpfn", "calibrate", "fold0=a", "fold1=b"], "weights= is empty"),
        (["lcpfn", "calibrate", "weights=w.safetensors", "fold0=a", "fold1=b"], "No card w.json"),
        (["lcpfn", "train", "corpus_fold=1"], "give corpus=CORPUS.json.gz too"),
        (["lcpfn", "train", "size=huge"], "Unknown size 'huge'. Allowed: paper, small."),
        (["lcpfn", "train", "step=3"], "Did you mean 'steps'?"),
        (["lcpfn", "train", "corpus=none.json.gz"], "No curve corpus at none.json.gz"),
        (["lcpfn", "train", "size=paper", "init=shipped"], "of another size than size=paper"),
    ],
)
def test_bad_input_is_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
