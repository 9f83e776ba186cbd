"""Folders replaced whole, and locks: a killed or concurrent run leaves every folder as before or
as after, never half-written and never missing.

A published folder (``output/2022-09``, a cached month of API responses) is a symbolic link to a
version folder in the hidden ``.versions`` folder beside it (``.versions/2022-09.v-<random>``). A
run writes a new version, flushes it to disk, and switches the link with one ``rename``, which
POSIX makes atomic: a reader, or a kill at any instant, sees the old version or the new one. Old
and unfinished versions are removed by the next run that holds the folder's lock.

On a filesystem without symbolic links the folder is a plain directory replaced by two renames;
a kill between them leaves the old version retired beside it, and the next run (``recover``)
puts it back before doing anything else.

Locks are ``flock`` locks on a file in the hidden ``.locks`` folder beside it
(``.locks/2022-09.lock``), held for a whole run: they work between processes on one machine and
between containers sharing a volume, whatever their PIDs. The lock file names its holder for the
message a second run prints.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import os
import shutil
import socket
import uuid
from pathlib import Path
from typing import Iterator

from .errors import Busy

VERSIONS, LOCKS = ".versions", ".locks"
VERSION, RETIRED, LINK = ".v-", ".retired-", ".link-"
# What earlier versions of this tool left beside the folder: staging and retired folders named by PID.
LEGACY_STAGING, LEGACY_RETIRED = ".partial-", ".previous-"


def lock_path(final: Path) -> Path:
    return final.parent / LOCKS / f"{final.name}.lock"


def _versions(final: Path) -> Path:
    return final.parent / VERSIONS


@contextlib.contextmanager
def locked(final: Path, what: str) -> Iterator[None]:
    """Hold the lock of ``final`` (created with its parent if need be), or raise ``Busy`` at once.

    ``what`` names the folder for a person ("the outputs of 2022-09").
    """
    path = lock_path(final)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                raise
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            raise Busy(f"{what} ({final}) are being written by another run ({holder}); "
                       "try again when it has finished") from None
        started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()} since {started}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock; the file stays, so that no run locks a deleted file


def new_version(final: Path) -> Path:
    """An empty folder to write the next version of ``final`` into; unique per call."""
    _versions(final).mkdir(parents=True, exist_ok=True)
    path = _versions(final) / f"{final.name}{VERSION}{uuid.uuid4().hex[:12]}"
    path.mkdir()
    return path


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file() and not path.is_symlink():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot sync a directory; the rename is still atomic
        pass
    finally:
        os.close(fd)


def publish(version: Path, final: Path) -> None:
    """Make ``final`` show ``version`` (a folder from ``new_version``), in one atomic step.

    Call it holding ``final``'s lock. The version previously shown is removed afterwards.
    """
    _fsync_tree(version)
    parent = final.parent
    previous = _target(final)
    link = _versions(final) / f"{final.name}{LINK}{uuid.uuid4().hex[:12]}"
    try:
        os.symlink(os.path.relpath(version, parent), link)
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS):
            raise
        _publish_by_rename(version, final)
        return
    if final.is_dir() and not final.is_symlink():  # a plain folder: an older tool's, or a fallback's
        retired = _versions(final) / f"{final.name}{RETIRED}{uuid.uuid4().hex[:12]}"
        os.rename(final, retired)  # a kill from here to the next rename is undone by recover()
        os.replace(link, final)
        _fsync_dir(parent)
        shutil.rmtree(retired, ignore_errors=True)
        return
    os.replace(link, final)
    _fsync_dir(parent)
    if previous is not None and previous != version:
        shutil.rmtree(previous, ignore_errors=True)


def _publish_by_rename(version: Path, final: Path) -> None:
    retired = _versions(final) / f"{final.name}{RETIRED}{uuid.uuid4().hex[:12]}"
    if final.exists() or final.is_symlink():
        os.rename(final, retired)
    os.rename(version, final)
    _fsync_dir(final.parent)
    if retired.is_symlink():
        retired.unlink()
    else:
        shutil.rmtree(retired, ignore_errors=True)


def _target(final: Path) -> Path | None:
    """The version folder ``final`` links to, or ``None`` when it is not a link."""
    if not final.is_symlink():
        return None
    return final.parent / os.readlink(final)


def recover(final: Path) -> None:
    """Undo what a killed run left: put back a retired folder that has no replacement, and remove
    unfinished versions and stale links. Call it holding ``final``'s lock."""
    parent = final.parent
    if not parent.is_dir():
        return
    ours = [(folder, prefix) for folder, prefix in ((_versions(final), final.name), (parent, f".{final.name}"))
            if folder.is_dir()]
    leftovers = sorted(p for folder, prefix in ours for p in folder.iterdir() if p.name.startswith(prefix)
                       and p.name[len(prefix):].startswith((VERSION, RETIRED, LINK, LEGACY_STAGING, LEGACY_RETIRED)))
    retired = [p for p in leftovers if RETIRED in p.name or LEGACY_RETIRED in p.name]
    if not final.exists() and retired:
        if final.is_symlink():
            final.unlink()  # a link to a version that is gone
        newest = max(retired, key=lambda p: p.stat().st_mtime)
        os.rename(newest, final)
        _fsync_dir(parent)
    current = _target(final)
    for path in leftovers:
        if path == current or not (path.exists() or path.is_symlink()):
            continue
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def writing(final: Path) -> Iterator[Path]:
    """Yield a new version folder of ``final`` to write into; when the block ends normally it is
    published, otherwise removed and ``final`` is untouched. Call it holding ``final``'s lock."""
    version = new_version(final)
    try:
        yield version
    except BaseException:
        shutil.rmtree(version, ignore_errors=True)
        raise
    publish(version, final)


@contextlib.contextmanager
def replacing(final: Path, what: str) -> Iterator[Path]:
    """Lock ``final``, recover it, and yield a new version folder to write into (see ``writing``)."""
    with locked(final, what):
        recover(final)
        with writing(final) as version:
            yield version
