"""A month's files to a bucket (``gs://`` or ``s3://``), so that a reader who trusts
``manifest.json`` never sees a half-delivered month, and an unchanged month uploads nothing.

Each file goes to ``<prefix>/<YYYY-MM>/<name>`` with its content type and its SHA-256 in the
object's metadata (``sha256``). The steps, in order:

1. List the month's objects and read its manifest, if any.
2. If the manifest is the one these files make and every file is there with its size, and
   nothing else is, stop: nothing to do.
3. Otherwise find the files whose object is missing or has another SHA-256. If there are any,
   remove the old manifest first, so that no manifest ever describes files being replaced.
4. Upload those files, then the manifest (last), then remove the objects the manifest does not
   list (files the month no longer has).
5. Put the review index (``<output>/index.html``, which lists every month and links to each
   month's page) at ``<prefix>/index.html``, if it is not there as it is, so that the month
   pages' link to it works in the bucket too.

A manifest present thus always lists files that are all there, with its hashes. Two deliveries
of one month at the same time are not guarded against (``billing deliver`` is one job).

Each kind of bucket is a small ``Store`` (``gcs.GcsStore``, ``s3.S3Store``), chosen by the
URL's scheme in ``STORES``; credentials and endpoints come from the client libraries' own
environment, never from the config.
"""

from __future__ import annotations

import hashlib
import logging
from typing import NamedTuple, Protocol

from ..config.delivery import parse_bucket_url
from ..records import Month
from .manifest import INDEX, MANIFEST, MANIFEST_CONTENT_TYPE, MonthFile, manifest
from .outcome import Failed, Outcome, one_line

SHA256_KEY = "sha256"  # the object metadata key holding the file's hex SHA-256


class Remote(NamedTuple):
    """An object already in the bucket.

    Attributes:
        size: its size in bytes.
        sha256: the SHA-256 in its metadata when the listing shows metadata (GCS), else ``None``.
    """

    size: int
    sha256: str | None


class Store(Protocol):
    """One bucket, through its provider's client library."""

    def list(self, prefix: str) -> dict[str, Remote]: ...

    def sha256(self, key: str) -> str | None:
        """The SHA-256 in the object's metadata (a request per object), ``None`` if it has none."""

    def read(self, key: str) -> bytes | None: ...

    def write(self, key: str, data: bytes, content_type: str, sha256: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def link(self, key: str) -> str:
        """A link a person can open (after signing in) to the object."""


def _stores() -> dict[str, type]:
    """Each kind of bucket by its URL scheme: a class taking the bucket's name, whose static
    ``explain(error)`` turns its client library's errors into one line (``None`` for others).
    Imported when used: each client library takes a while to import."""
    from .gcs import GcsStore
    from .s3 import S3Store

    return {"gs": GcsStore, "s3": S3Store}


def deliver_to_bucket(url: str, files: tuple[MonthFile, ...], month: Month,
                      log: logging.Logger, index: MonthFile | None = None) -> Outcome:
    """Put ``files`` and their manifest under ``<url>/<month>/``; ``Failed`` naming ``url`` if
    it cannot be done (a missing bucket, denied access, no credentials)."""
    target = parse_bucket_url(url)
    kind = _stores()[target.scheme]
    try:
        store = kind(target.bucket)
        root = f"{target.scheme}://{target.bucket}/"
        outcome = _sync(store, root, target.folder(month), files, month, log)
        key = target.folder(month).removesuffix(f"{month}/") + INDEX
        if index is not None and _put_index(store, key, index):
            log.debug("%s%s: updated", root, key)
            outcome = outcome._replace(done=outcome.done + "; the review index updated")
    except Exception as error:  # noqa: BLE001 - every failure becomes one line naming the bucket
        reason = kind.explain(error)
        if reason is None:
            log.debug("%s: unexpected error", url, exc_info=True)
            reason = f"unexpected {type(error).__name__}: {one_line(error)}"
        raise Failed(url, reason) from None
    log.info("%s", outcome.line)
    return outcome


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _already_there(store: Store, remote: Remote | None, key: str, file: MonthFile) -> bool:
    if remote is None or remote.size != file.size:
        return False
    sha256 = remote.sha256 if remote.sha256 is not None else store.sha256(key)
    return sha256 == file.sha256


def _put_index(store: Store, key: str, index: MonthFile) -> bool:
    """Upload the review index to ``key`` unless it is there as it is; whether it was uploaded."""
    if _already_there(store, store.list(key).get(key), key, index):
        return False
    store.write(key, index.data, index.content_type, index.sha256)
    return True


def _sync(store: Store, root: str, folder: str, files: tuple[MonthFile, ...], month: Month,
          log: logging.Logger) -> Outcome:
    where = root + folder
    remote = store.list(folder)
    manifest_key = folder + MANIFEST
    wanted = manifest(month, files)
    old = store.read(manifest_key) if manifest_key in remote else None
    names = {folder + f.name for f in files}
    stale = sorted(key for key in remote if key not in names and key != manifest_key)
    all_there = all(folder + f.name in remote and remote[folder + f.name].size == f.size for f in files)
    if old == wanted and all_there:
        changed: list[MonthFile] = []  # the manifest is written last and withdrawn first: it vouches for them
    else:
        changed = [f for f in files if not _already_there(store, remote.get(folder + f.name), folder + f.name, f)]
    if changed and old is not None:
        store.delete(manifest_key)
        log.debug("%s%s: withdrawn until the changed files are uploaded", where, MANIFEST)
    uploading = {f.name for f in changed}
    for file in files:
        if file.name in uploading:
            store.write(folder + file.name, file.data, file.content_type, file.sha256)
            log.debug("%s%s: uploaded (%d bytes)", where, file.name, file.size)
        else:
            log.debug("%s%s: unchanged", where, file.name)
    if changed or old != wanted:
        store.write(manifest_key, wanted, MANIFEST_CONTENT_TYPE, _sha256(wanted))
        log.debug("%s%s: written", where, MANIFEST)
    for key in stale:
        store.delete(key)
        log.debug("%s%s: removed (not in the month any more)", root, key)

    count = len(files)
    if changed:
        done = f"uploaded {len(changed)} of {count} files ({count - len(changed)} unchanged)"
    else:
        done = f"all {count} files already there, unchanged"
    if stale:
        done += f"; removed {len(stale)} object{'s' if len(stale) > 1 else ''} the month no longer has"
    return Outcome(where, done, tuple(f.name for f in changed), tuple(key[len(folder):] for key in stale),
                   tuple((f.name, store.link(folder + f.name)) for f in files))
