"""Datasets (as in-memory tensors) and the partitioners that split them over clients.

A dataset is one module here with its reader and its registration (`datasets.py` holds the
registry); importing this package imports every module, so a new dataset is one new file.
"""

from __future__ import annotations

from flcore.registry import import_modules

# In the order the dashboard and `list` show them; then any other module that registers one.
import_modules(
    __name__,
    __path__,
    first=("digits", "synthetic", "vision", "leaf", "files"),
    skip=("datasets", "partition", "errors", "unpickle", "uploads", "upload_index"),
)
