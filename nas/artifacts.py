"""Where supernet checkpoints and trial weights live, so that every worker reaches them.

The ``artifacts`` setting names an Optuna artifact store: a folder (a shared filesystem
when workers run on several machines; default: ``artifacts/`` beside the SQLite file) or
an S3-compatible bucket, ``s3://bucket[/prefix]``, reached with boto3's usual settings
(``AWS_ENDPOINT_URL`` for MinIO and the like, credentials from the environment or a
profile). Files are uploaded with ``optuna.artifacts.upload_artifact``, so each is listed
with its study or trial (optuna-dashboard shows them) under a random UUID.

A study's supernet checkpoint is published after every epoch that trains; the newest
one's id and epoch are a study attribute. A worker on another machine waits until the
published checkpoint holds every epoch, then downloads it once (a folder store is read
in place) and evaluates children of the supernet trained elsewhere. A trainer that
finds no checkpoint of its own resumes from the published one.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas import store
from nas.core.errors import ConfigError, StudyError
from nas.core.files import atomic_write

if TYPE_CHECKING:
    import optuna
    from optuna.artifacts._protocol import ArtifactStore

S3_SCHEME = "s3://"
# The newest published supernet checkpoint: {"artifact": uuid, "epoch": n}.
ATTR_SUPERNET_CHECKPOINT = "nas.supernet_checkpoint"
# Transient S3 errors (throttling, a dropped connection) are retried with backoff.
S3_RETRIES = 6
WAIT_POLL_S = 10.0


@dataclass(frozen=True)
class Artifacts:
    """A study's artifact store and the local folder that training writes to.

    Attributes:
        location: The store as configured (a folder, absolute, or an ``s3://`` URL).
        store: The Optuna artifact store.
        local_dir: Checkpoints in training and downloaded copies: the store's own folder
            for a folder store, else a local folder beside the database.
        folder: The store's folder when it is one (files are read in place), else None.
    """

    location: str
    store: ArtifactStore
    local_dir: Path
    folder: Path | None

    def upload(self, study_or_trial: optuna.Study | optuna.Trial, path: Path) -> str:
        """Upload ``path`` as an artifact of the study or trial; its id."""
        from optuna.artifacts import upload_artifact

        try:
            return upload_artifact(
                artifact_store=self.store, file_path=str(path), study_or_trial=study_or_trial
            )
        except Exception as error:  # boto3 / OS errors alike: one line, what to check
            raise StudyError(
                f"Cannot upload {path.name} to artifacts={self.location}: {_reason(error)}"
            ) from None

    def path_of(self, artifact_id: str, cache_name: str) -> Path:
        """A local file holding the artifact: in place for a folder store, else a copy
        under ``local_dir/cache`` downloaded once (atomically, so concurrent workers on one
        machine share it)."""
        artifact_id = checked_id(artifact_id, cache_name)
        if self.folder is not None:
            path = self.folder / artifact_id
            if not path.is_file():
                raise StudyError(self._missing(artifact_id, cache_name))
            return path
        path = self.local_dir / "cache" / f"{artifact_id}-{cache_name}"
        if not path.is_file():
            self.download(artifact_id, path, cache_name)
        return path

    def download(self, artifact_id: str, path: Path, what: str) -> None:
        """Copy the artifact to ``path`` atomically (a partial download never shows)."""
        from optuna.artifacts.exceptions import ArtifactNotFound

        artifact_id = checked_id(artifact_id, what)

        def copy(temporary: Path) -> None:
            with open(temporary, "wb") as sink, self.store.open_reader(artifact_id) as source:
                shutil.copyfileobj(source, sink, 1 << 20)

        try:
            atomic_write(path, copy)
        except ArtifactNotFound:
            raise StudyError(self._missing(artifact_id, what)) from None
        except Exception as error:  # OS and botocore errors alike: one line, the cause
            raise StudyError(
                f"Cannot download {what} from artifacts={self.location}: {_reason(error)}"
            ) from None

    def remove(self, artifact_id: str) -> None:
        """Delete an artifact no longer referenced; a failure only leaves a stale file."""
        with contextlib.suppress(Exception):
            self.store.remove(checked_id(artifact_id, "artifact"))

    def _missing(self, artifact_id: str, what: str) -> str:
        return (
            f"{what} (artifact {artifact_id}) is not in artifacts={self.location}; this "
            "machine does not see the store the study wrote to. Use a shared folder or "
            "artifacts=s3://bucket for workers on several machines (README: workers)."
        )


def checked_id(value: object, what: str) -> str:
    """An artifact id read from the database: untrusted, so it must be a plain UUID
    (a path such as ``../../x`` would escape a folder store)."""
    try:
        if isinstance(value, str) and str(uuid.UUID(value)) == value:
            return value
    except ValueError:
        pass
    raise StudyError(f"The study stores a malformed artifact id for {what}: {value!r}.")


def resolve_location(location: str | None, storage_url: str) -> str:
    """The store the ``artifacts`` setting names, as recorded with the study: an absolute
    folder or an ``s3://`` URL."""
    if location is None:
        return str(store.default_artifact_dir(storage_url).resolve())
    if location.startswith(S3_SCHEME):
        _split_s3(location)
        return location.rstrip("/")
    if "://" in location:
        scheme = location.split("://", 1)[0]
        raise ConfigError(
            f"artifacts={location}: the {scheme}:// scheme is not supported; use a folder "
            "(shared by the workers) or s3://bucket[/prefix]."
        )
    return str(Path(location).expanduser().resolve())


def open_artifacts(location: str | None, storage_url: str) -> Artifacts:
    """The artifact store of ``artifacts=location`` (None: the default folder), checked
    to be reachable now rather than after hours of training."""
    from optuna.artifacts import FileSystemArtifactStore

    resolved = resolve_location(location, storage_url)
    if not resolved.startswith(S3_SCHEME):
        folder = Path(resolved)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"artifacts={resolved}: cannot create the folder ({_reason(error)})."
            ) from None
        return Artifacts(resolved, FileSystemArtifactStore(folder), folder, folder)
    local = store.default_artifact_dir(storage_url).resolve()
    return Artifacts(resolved, _open_s3(resolved), local, None)


def _split_s3(url: str) -> tuple[str, str]:
    bucket, _, prefix = url[len(S3_SCHEME) :].partition("/")
    # S3's bucket naming rules, loosely: what any S3-compatible server accepts.
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
        raise ConfigError(
            f"artifacts={url}: '{bucket}' is not a valid bucket name (3-63 lower-case "
            "letters, digits, '.' or '-'). Example: artifacts=s3://my-bucket/nas."
        )
    return bucket, prefix.strip("/")


def _open_s3(url: str) -> ArtifactStore:
    bucket, prefix = _split_s3(url)
    try:
        import boto3
    except ImportError:
        raise ConfigError(f"artifacts={url} needs boto3: pip install -e '.[s3]'.") from None
    from optuna.artifacts import Backoff, Boto3ArtifactStore

    client = boto3.client("s3")
    try:
        client.head_bucket(Bucket=bucket)
    except Exception as error:  # no credentials, unreachable endpoint, no such bucket
        raise StudyError(
            f"Cannot reach artifacts={url}: {_reason(error)}. Check the bucket exists and "
            "the AWS_* settings (AWS_ENDPOINT_URL for an S3-compatible server)."
        ) from None
    # Optuna's store reads a whole file into memory before uploading unless told not to.
    raw = Boto3ArtifactStore(bucket, client, avoid_buf_copy=True)
    inner: ArtifactStore = _Prefixed(raw, prefix) if prefix else raw
    return Backoff(inner, max_retries=S3_RETRIES)


class _Prefixed:
    """Keys under ``prefix/`` in the bucket, so that one bucket can hold many projects."""

    def __init__(self, inner: ArtifactStore, prefix: str) -> None:
        self._inner, self._prefix = inner, prefix

    def open_reader(self, artifact_id: str) -> Any:
        return self._inner.open_reader(f"{self._prefix}/{artifact_id}")

    def write(self, artifact_id: str, content_body: Any) -> None:
        self._inner.write(f"{self._prefix}/{artifact_id}", content_body)

    def remove(self, artifact_id: str) -> None:
        self._inner.remove(f"{self._prefix}/{artifact_id}")


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:300] if text else type(error).__name__


# --- the supernet checkpoint of a study ------------------------------------------------


def published_checkpoint(study: optuna.Study) -> tuple[str, int] | None:
    """(artifact id, epochs it holds) of the study's newest supernet checkpoint, if any."""
    raw = study.user_attrs.get(ATTR_SUPERNET_CHECKPOINT)
    if raw is None:
        return None
    epoch = raw.get("epoch") if isinstance(raw, dict) else None
    if type(epoch) is not int or epoch < 1:
        raise StudyError(
            f"Study '{study.study_name}' has a malformed {ATTR_SUPERNET_CHECKPOINT} attribute."
        )
    return checked_id(raw.get("artifact"), "the supernet checkpoint"), epoch


def publish_checkpoint(study: optuna.Study, artifacts: Artifacts, path: Path, epoch: int) -> None:
    """Upload the checkpoint holding ``epoch`` epochs and point the study at it; the
    previous one is deleted once nobody can be pointed at it any more."""
    previous = published_checkpoint(study)
    artifact_id = artifacts.upload(study, path)
    study.set_user_attr(ATTR_SUPERNET_CHECKPOINT, {"artifact": artifact_id, "epoch": epoch})
    if previous is not None and previous[0] != artifact_id:
        artifacts.remove(previous[0])


def discard_published(study: optuna.Study) -> None:
    """Point the study at no published checkpoint (an unreadable one): the next trainer
    starts from scratch. The file itself stays in the artifact store."""
    study.set_user_attr(ATTR_SUPERNET_CHECKPOINT, None)


def fetch_for_resume(study: optuna.Study, artifacts: Artifacts, path: Path) -> int:
    """A trainer without a checkpoint of its own (another machine, a lost disk) resumes
    from the published one; the epochs it holds, or 0."""
    published = published_checkpoint(study)
    if path.exists() or published is None:
        return 0
    artifacts.download(published[0], path, "the supernet checkpoint")
    return published[1]


def wait_for_supernet(
    study: optuna.Study,
    artifacts: Artifacts,
    epochs: int,
    cache_name: str,
    echo: Callable[[str], Any] = print,
    poll_s: float = WAIT_POLL_S,
    what: str = "supernet",
) -> Path:
    """The local file of the study's finished supernet (or other shared network:
    ``what``), waiting while it trains elsewhere; a downloaded copy is named after
    ``cache_name``."""
    shown: int | None = None
    while True:
        published = published_checkpoint(study)
        epoch = published[1] if published else 0
        if published is not None and epoch >= epochs:
            return artifacts.path_of(published[0], cache_name)
        if epoch != shown:
            echo(
                f"waiting for the {what} of study '{study.study_name}' ({epoch}/{epochs} "
                "epochs published); it is trained by the `nas search` that created the study "
                "(run it again to resume training)"
            )
            shown = epoch
        time.sleep(poll_s)


# Study names used as file names as they are: portable characters, well under the
# 255 bytes file systems allow.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def checkpoint_path(artifact_dir: Path, study_name: str, kind: str = "supernet") -> Path:
    """Where a study's ``kind`` checkpoint lives locally (one file per study and kind).

    A plain study name is the file's name. Any other (``研究``, a 300-character name)
    becomes a readable prefix and a hash of the whole name, so that two studies never
    share a file and no name is too long for the file system.
    """
    if _PLAIN_NAME.fullmatch(study_name):
        safe = study_name
    else:
        prefix = re.sub(r"[^A-Za-z0-9_.-]", "_", study_name)[:40]
        digest = hashlib.sha256(study_name.encode("utf-8")).hexdigest()[:16]
        safe = f"{prefix}-{digest}"
    return artifact_dir / f"{kind}s" / f"{safe}.ckpt"


@dataclass
class StudyFiles:
    """A study's shared files (``evaluators.base.SharedFiles``): checkpoints that one
    process trains and publishes, and the workers of the study wait for and read."""

    study: optuna.Study
    artifacts: Artifacts
    echo: Callable[[str], Any] = print

    @property
    def location(self) -> str:
        return self.artifacts.location

    def checkpoint_path(self, kind: str) -> Path:
        return checkpoint_path(self.artifacts.local_dir, self.study.study_name, kind)

    def fetch_for_resume(self, path: Path) -> bool:
        return bool(fetch_for_resume(self.study, self.artifacts, path))

    def publish(self, path: Path, epoch: int) -> None:
        publish_checkpoint(self.study, self.artifacts, path, epoch)

    def discard_published(self) -> None:
        discard_published(self.study)

    def published_epochs(self) -> int | None:
        published = published_checkpoint(self.study)
        return None if published is None else published[1]

    def wait_for_finished(self, path: Path, epochs: int, what: str = "supernet") -> Path:
        return wait_for_supernet(
            self.study, self.artifacts, epochs, path.name, self.echo, what=what
        )
