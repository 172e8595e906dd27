"""Files people upload to a server: kept in its data folder under their content hash.

An upload (a CSV or TSV, an NPZ or a zipped image folder for the `file` dataset) is written to
`<data folder>/uploads/<sha256>.<ext>`, so the same file uploaded twice is stored once and a run
names its data by content. `uploads/index.json` remembers each file's original name, size, who
uploaded it and when, for the list the form offers and for the sentences that name it
(`original_name`: a user reads 'cars.csv', never its hash). A file is kept only once the real
reader has read it (`flcore.data.files.check_readable`): one that cannot be read is deleted and
refused in a sentence naming it as it was sent. Nothing is ever written outside the data
folder, and a run submitted to the server may only read a file from `uploads/` (`problem`): a
path typed into a form cannot make the server read its other files. An upload belongs to whoever
sent it (everyone who sent the same bytes): `listing` shows a person their own and an admin
all, `problem` refuses a run on someone else's, and `delete` forgets an owner's copy (the file
goes once nobody owns it; an admin deletes it outright). The size limits are the
server settings `max_upload_mb` (the file) and `max_decoded_mb` (what it takes once read, worked
out from its headers before it is kept: see `flcore.data.files`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from flcore.data import files
from flcore.data.errors import DataFileError
from flcore.data.upload_index import FOLDER, folder, original_name, read_index

__all__ = ["FOLDER", "SUFFIXES", "Upload", "UploadError", "delete", "find", "folder", "listing", "original_name", "problem", "save"]
from flcore.auth import User
from flcore.problems import Problem
from flcore.settings import Settings

SUFFIXES = (".csv", ".tsv", ".npz", ".zip")


class UploadError(ValueError):
    """An upload refused; the message says why and what is allowed."""


@dataclass(frozen=True)
class Upload:
    path: Path
    name: str  # as uploaded
    size: int  # bytes
    uploaded_by: str | None
    uploaded_at: float
    owners: tuple[str, ...] = ()  # everyone who uploaded these bytes

    def belongs_to(self, user: User | None) -> bool:
        """Whether `user` may see, use and delete this upload (None: the server itself, as the CLI)."""
        return user is None or user.admin or user.name in self.owners

    @property
    def label(self) -> str:
        return f"{self.name} ({_size(self.size)})"


def save(data: bytes, filename: str, settings: Settings, user: str | None = None) -> Upload:
    """Store an uploaded file (checked: its kind, its size, what it takes once read, and that the
    reader reads it) and return it."""
    suffix = Path(filename).suffix.lower()
    if suffix not in SUFFIXES:
        raise UploadError(f"{filename!r} is not a CSV, TSV, NPZ or ZIP file; upload one of: {', '.join(SUFFIXES)}")
    limit = settings.max_upload_mb * 2**20
    if len(data) > limit:
        raise UploadError(f"{filename!r} is {_size(len(data))}; this server takes uploads of at most {settings.max_upload_mb} MB")
    if not data:
        raise UploadError(f"{filename!r} is empty")
    target = folder(settings) / f"{hashlib.sha256(data).hexdigest()}{suffix}"
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new folder: its owner's only
    written = target if target.exists() else target.with_name(target.name + ".part")
    if written != target:
        _write_private(written, data)
    try:  # what it takes once read, from its headers (a small file may decode to gigabytes), then read
        files.check_decoded_size(str(written), Path(filename).name, settings.max_decoded_mb)
        files.check_readable(str(written), Path(filename).name)
    except DataFileError as err:
        if written != target:
            written.unlink(missing_ok=True)
        raise UploadError(str(err)) from None
    if written != target:
        os.replace(written, target)
    index = read_index(settings)
    owners = _owners(index.get(target.name, {}))
    owners += [user] if user and user not in owners else []
    entry = {"name": Path(filename).name, "size": len(data), "uploaded_by": user, "uploaded_at": time.time(), "owners": owners}
    index[target.name] = entry
    _write_index(settings, index)
    return _upload(target, index[target.name])


def listing(settings: Settings, user: User | None = None) -> list[Upload]:
    """The uploaded files still on the server that `user` may use (an admin, or None: all), newest first."""
    index = read_index(settings)
    found = [_upload(folder(settings) / name, entry) for name, entry in index.items() if (folder(settings) / name).is_file()]
    return sorted([u for u in found if u.belongs_to(user)], key=lambda u: u.uploaded_at, reverse=True)


def find(data_file: str, settings: Settings) -> Upload | None:
    """The upload `data_file` names (None: not an upload of this server, or gone)."""
    path = Path(data_file).expanduser().resolve() if data_file else None
    entry = read_index(settings).get(path.name) if path is not None and path.parent == folder(settings).resolve() else None
    return _upload(folder(settings) / path.name, entry) if entry is not None and path.is_file() else None


def delete(data_file: str, settings: Settings, user: User | None = None) -> None:
    """Forget `user`'s upload `data_file`: the file and its index entry go once nobody else sent
    the same bytes (an admin, or None, deletes it outright). Raises UploadError (a sentence
    naming the file as it was sent) for someone else's upload or a file that is not an upload."""
    upload = find(data_file, settings)
    if upload is None:
        raise UploadError(f"{Path(data_file).name!r} is not a file uploaded to this server (it may be deleted already)")
    if not upload.belongs_to(user):
        raise UploadError(f"{upload.name!r} was uploaded by someone else: only they or an admin may delete it")
    index = read_index(settings)
    owners = [o for o in _owners(index.get(upload.path.name, {})) if user is None or o != user.name]
    if owners and not (user is None or user.admin):  # someone else sent it too: it stays theirs
        index[upload.path.name]["owners"] = owners
    else:
        index.pop(upload.path.name, None)
        upload.path.unlink(missing_ok=True)
    _write_index(settings, index)


def problem(data_file: str, settings: Settings, user: User | None = None) -> Problem | None:
    """Why a run of `user` on this server may not read `data_file` (None: it may): only uploaded
    files, and of those only their own unless they are an admin (None: the server itself)."""
    if not data_file:
        return Problem("data_file", "data_file is empty: upload a CSV, NPZ or zipped image folder on New run and choose it")
    path = Path(data_file).expanduser().resolve()
    if path.parent != folder(settings).resolve() or not path.is_file():
        return Problem("data_file", "data_file must be a file uploaded to this server (New run, dataset 'A file of your own')")
    upload = find(data_file, settings)
    if upload is not None and not upload.belongs_to(user):
        return Problem("data_file", f"{upload.name!r} was uploaded by someone else: choose one of your own files or upload it yourself")
    return None


def _upload(path: Path, entry: dict) -> Upload:
    return Upload(
        path,
        entry.get("name", path.name),
        int(entry.get("size", 0)),
        entry.get("uploaded_by"),
        float(entry.get("uploaded_at", 0)),
        tuple(_owners(entry)),
    )


def _owners(entry: dict) -> list[str]:
    """Who sent an upload (an index written before owners were kept: its one uploader)."""
    if "owners" in entry:
        return list(entry["owners"])
    return [entry["uploaded_by"]] if entry.get("uploaded_by") else []


def _write_index(settings: Settings, index: dict[str, dict]) -> None:
    path = folder(settings) / "index.json"
    tmp = path.with_name("index.json.part")
    _write_private(tmp, json.dumps(index, indent=2).encode())
    os.replace(tmp, path)


def _write_private(path: Path, data: bytes) -> None:
    """Write `path` readable by the server's account only (0600): people's files and who sent them."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{max(1, round(n / 1024))} KB"
