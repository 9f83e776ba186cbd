"""A month's files as delivered, and ``manifest.json``: what a reader can trust to be complete.

The files are read into memory once, at the start: ``output/2022-09`` is a link to a version
folder that a later run may replace (and remove) at any moment, so every destination gets the
same snapshot, and the manifest's hashes are those of the bytes sent.

The manifest names each file with its size, SHA-256 and content type, and nothing that changes
from one delivery of the same files to the next (no timestamp), so that an unchanged month has
an identical manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import NamedTuple

from ..errors import UsageError
from ..records import Month

MANIFEST = "manifest.json"
MANIFEST_CONTENT_TYPE = "application/json"

CONTENT_TYPES = {
    ".pdf": "application/pdf",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".parquet": "application/vnd.apache.parquet",  # registered with IANA in 2024
    ".xml": "application/xml",
    ".zip": "application/zip",
}
OTHER_CONTENT_TYPE = "application/octet-stream"


class MonthFile(NamedTuple):
    """One file of a month's folder, as delivered.

    Attributes:
        name: the file's name (the folder is flat).
        data: its bytes, read once.
        sha256: hex SHA-256 of ``data``.
        content_type: the HTTP content type it is stored with.
    """

    name: str
    data: bytes
    sha256: str
    content_type: str

    @property
    def size(self) -> int:
        return len(self.data)


def content_type(name: str) -> str:
    """From the file's extension, by a fixed table (the system's MIME table varies by machine)."""
    return CONTENT_TYPES.get(Path(name).suffix.lower(), OTHER_CONTENT_TYPE)


INDEX = "index.html"  # the review page listing every month, beside the month folders


def month_file(name: str, data: bytes) -> MonthFile:
    return MonthFile(name, data, hashlib.sha256(data).hexdigest(), content_type(name))


def read_index(output: Path) -> MonthFile | None:
    """The review index beside the month folders (``<output>/index.html``), if there is one."""
    try:
        return month_file(INDEX, (output / INDEX).read_bytes())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def read_month(folder: Path, month: Month) -> tuple[MonthFile, ...]:
    """The files of a month's output folder (the version its link points to), sorted by name.

    Hidden files, sub-folders and links are not part of a month. A folder that is missing, empty
    or holds a file named like the manifest is a ``UsageError``.
    """
    try:
        resolved = folder.resolve(strict=True)
        entries = sorted(resolved.iterdir())
    except FileNotFoundError:
        raise UsageError(f"nothing to deliver for {month}: {folder} does not exist "
                         f"(run billing run --month {month} first)") from None
    except NotADirectoryError:
        raise UsageError(f"nothing to deliver for {month}: {folder} is not a folder") from None
    files = []
    for path in entries:
        if path.name.startswith(".") or path.is_symlink() or not path.is_file():
            continue
        if path.name == MANIFEST:
            raise UsageError(f"{folder} holds a file named {MANIFEST}, the name delivery gives to its own list "
                             "of the files; rename it")
        try:
            data = path.read_bytes()
        except OSError as error:  # a run replaced the folder meanwhile (and removed this version)
            raise UsageError(f"cannot read {path.name} in {folder} ({error.strerror}); if a run replaced the "
                             f"folder meanwhile, deliver again: billing deliver --month {month}") from None
        files.append(month_file(path.name, data))
    if not files:
        raise UsageError(f"nothing to deliver for {month}: {folder} has no files")
    return tuple(files)


def manifest(month: Month, files: tuple[MonthFile, ...]) -> bytes:
    """``manifest.json``: the month and each file's name, size, SHA-256 and content type, sorted
    by name; the same files always give the same bytes."""
    document = {
        "month": str(month),
        "files": [{"name": f.name, "size": f.size, "sha256": f.sha256, "content_type": f.content_type}
                  for f in sorted(files)],
    }
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
