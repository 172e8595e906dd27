"""Where a server keeps uploads and what each was called: `<data folder>/uploads/` and its
`index.json` (the original name, size, who uploaded it and when). Read by `uploads.py`, which
writes them, and by the `file` dataset's reader, which names an upload as it was sent."""

from __future__ import annotations

import json
from pathlib import Path

from flcore.settings import Settings

FOLDER = "uploads"


def folder(settings: Settings) -> Path:
    return settings.data_dir / FOLDER


def read_index(settings: Settings) -> dict[str, dict]:
    try:
        return json.loads((folder(settings) / "index.json").read_text())
    except (OSError, ValueError):
        return {}


def original_name(data_file: str, settings: Settings) -> str | None:
    """The name an uploaded `data_file` was sent with (None: not an upload of this server)."""
    if not data_file:
        return None
    path = Path(data_file).expanduser().resolve()
    if path.parent != folder(settings).resolve():
        return None
    return read_index(settings).get(path.name, {}).get("name")
