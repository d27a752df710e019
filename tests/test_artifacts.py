"""Artifact stores: a folder or an S3-compatible bucket (a moto server on loopback), the
supernet published for workers on other machines, and export reading through the store."""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from nas import store
from nas.artifacts import (
    ATTR_SUPERNET_CHECKPOINT,
    checked_id,
    fetch_for_resume,
    open_artifacts,
    publish_checkpoint,
    published_checkpoint,
    resolve_location,
    wait_for_supernet,
)
from nas.cli import main
from nas.core.errors import ConfigError, StudyError

pytestmark = pytest.mark.e2e  # real searches, processes or servers: the end-to-end tier

TINY_BIGNAS = ["space=bignas", "supernet.epochs=1", "supernet.calibration_batches=2", "trials=2"]
BUCKET = "nas-test"


@pytest.fixture
def s3_bucket(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An S3 server on loopback with one empty bucket; boto3 finds it through AWS_*."""
    pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    try:
        yield f"s3://{BUCKET}"
    finally:
        server.stop()


def _keys(prefix: str) -> list[str]:
    import boto3

    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def _study(url: str, name: str = "s") -> optuna.Study:
    return optuna.create_study(study_name=name, storage=store.open_storage(url))


def test_locations_are_resolved_or_refused_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    assert resolve_location(None, url) == str(tmp_path / "artifacts")
    assert resolve_location("rel/dir", url) == str(Path("rel/dir").resolve())
    assert resolve_location("s3://my-bucket/a/b/", url) == "s3://my-bucket/a/b"
    with pytest.raises(ConfigError, match=r"gs:// scheme is not supported"):
        resolve_location("gs://bucket", url)
    with pytest.raises(ConfigError, match=r"'Bad_Bucket' is not a valid bucket name"):
        resolve_location("s3://Bad_Bucket/x", url)


@pytest.mark.parametrize("value", ["../../etc/passwd", "/abs", 7, None, "not-a-uuid"])
def test_artifact_ids_read_from_the_database_must_be_uuids(value: object) -> None:
    with pytest.raises(StudyError, match="malformed artifact id"):
        checked_id(value, "the weights of trial 3")
    good = str(uuid.uuid4())
    assert checked_id(good, "x") == good


def test_an_unreachable_bucket_fails_before_any_training(
    s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["search", *TINY_BIGNAS, "artifacts=s3://no-such-bucket"])
    err = capsys.readouterr().err
    assert code != 0
    assert (
        err.startswith("error: Cannot reach artifacts=s3://no-such-bucket") and err.count("\n") == 1
    )
    assert "Traceback" not in err


def test_publishing_replaces_the_previous_checkpoint_and_resume_fetches_it(
    s3_bucket: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study = _study(url)
    artifacts = open_artifacts(f"{s3_bucket}/runs", url)
    checkpoint = tmp_path / "trainer" / "s.ckpt"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"epoch one")
    publish_checkpoint(study, artifacts, checkpoint, 1)
    first = published_checkpoint(study)
    checkpoint.write_bytes(b"epoch two")
    publish_checkpoint(study, artifacts, checkpoint, 2)
    second = published_checkpoint(study)

    assert first is not None and second is not None and second[1] == 2
    assert _keys("runs/") == [f"runs/{second[0]}"]  # the first is deleted
    # Another machine, no local checkpoint: training resumes from the published one.
    elsewhere = tmp_path / "elsewhere" / "s.ckpt"
    assert fetch_for_resume(study, artifacts, elsewhere) == 2
    assert elsewhere.read_bytes() == b"epoch two"
    assert fetch_for_resume(study, artifacts, elsewhere) == 0  # its own copy wins now


def test_a_worker_waits_for_the_supernet_to_finish(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study = _study(url)
    artifacts = open_artifacts(None, url)
    checkpoint = tmp_path / "s.ckpt"
    checkpoint.write_bytes(b"epoch 1")
    publish_checkpoint(study, artifacts, checkpoint, 1)
    said: list[str] = []

    def finish_later() -> None:
        checkpoint.write_bytes(b"epoch 2")
        publish_checkpoint(study, artifacts, checkpoint, 2)

    timer = threading.Timer(0.3, finish_later)
    timer.start()
    path = wait_for_supernet(study, artifacts, 2, "s.ckpt", said.append, poll_s=0.05)
    timer.join()

    assert path.read_bytes() == b"epoch 2"
    assert path.parent == tmp_path / "artifacts"  # a folder store is read in place
    assert len(said) == 1 and "(1/2 epochs published)" in said[0]


def test_a_tampered_checkpoint_pointer_is_refused(tmp_path: Path) -> None:
    study = _study(f"sqlite:///{tmp_path / 'nas.db'}")
    study.set_user_attr(ATTR_SUPERNET_CHECKPOINT, {"artifact": "../../x", "epoch": 3})
    with pytest.raises(StudyError, match="malformed artifact id"):
        published_checkpoint(study)
    study.set_user_attr(ATTR_SUPERNET_CHECKPOINT, {"artifact": str(uuid.uuid4()), "epoch": "3"})
    with pytest.raises(StudyError, match=r"malformed nas\.supernet_checkpoint"):
        published_checkpoint(study)


def test_a_worker_elsewhere_evaluates_the_supernet_from_the_bucket(
    s3_bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"sqlite:///{tmp_path / 'shared' / 'nas.db'}"
    location = f"{s3_bucket}/project"
    assert main(["search", *TINY_BIGNAS, f"storage={url}", f"artifacts={location}"]) == 0
    study = store.load_study(store.open_storage(url), "bignas-digits")
    published = published_checkpoint(study)
    assert published is not None and published[1] == 1
    weights = [t.user_attrs["weights"] for t in study.get_trials()]
    assert set(_keys("project/")) == {f"project/{i}" for i in [published[0], *weights]}

    # Another machine: none of the first one's local files, the same database and bucket.
    shutil.rmtree(tmp_path / "shared" / "artifacts")
    study.set_user_attr(store.ATTR_TRIALS, 4)  # what `nas search trials=4` records

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a worker must not train the supernet")

    monkeypatch.setattr("evaluators.supernet_steps.SandwichRule.step", no_training)
    capsys.readouterr()
    assert main(["worker", "study=bignas-digits", f"storage={url}"]) == 0
    assert "4 trials finished" in capsys.readouterr().out
    cached = list((tmp_path / "shared" / "artifacts" / "cache").iterdir())
    assert [p.name.split("-bignas")[0] for p in cached] == [published[0]]

    # Export finds the weights through the store recorded with the study.
    out = tmp_path / "net.py"
    assert main(["export", "study=bignas-digits", "trial=3", f"storage={url}", f"out={out}"]) == 0
    assert out.with_suffix(".safetensors").stat().st_size > 0


@pytest.mark.timeout(300)
def test_local_workers_evaluate_the_supernet_trained_once_in_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    code = main(["search", *TINY_BIGNAS, "trials=4", "workers=2", f"storage={url}"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "4/4 trials finished" in out.out
    assert out.out.count("supernet epoch 1/1") == 1  # trained by the parent alone

    study = store.load_study(store.open_storage(url), "bignas-digits")
    published = published_checkpoint(study)
    assert published is not None and published[1] == 1
    folder = tmp_path / "artifacts"
    assert (folder / published[0]).is_file()
    assert not (folder / "cache").exists()  # a folder store is read in place, not copied
    # Workers that start together draw their own proposals, not the same ones.
    archs = [t.user_attrs["arch_str"] for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(archs) == 4 and len(set(archs)) == 4, archs


def test_checkpoint_names_are_unique_per_study_and_fit_the_file_system(tmp_path: Path) -> None:
    from nas.artifacts import checkpoint_path

    names = ["αβ", "γδ", "研究", "a b", "a_b", "x" * 300, "x" * 301]
    paths = [checkpoint_path(tmp_path, name) for name in names]
    assert len(set(paths)) == len(names)  # before: αβ, γδ and 研究 were all __.ckpt
    for path in paths:
        assert len(path.name.encode()) < 100
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"ok")  # a name the file system takes
    # Plain names keep the file name they always had, so existing checkpoints resume.
    assert checkpoint_path(tmp_path, "bignas-digits").name == "bignas-digits.ckpt"
    assert checkpoint_path(tmp_path, "s", "tas-search") == tmp_path / "tas-searchs" / "s.ckpt"
