"""Reading the CIFAR python pickles without letting a file run code.

`pickle.load` calls whatever function a file names, so a crafted file can run anything (a
`__reduce__` that returns `os.system`, for one). CIFAR-10 and CIFAR-100 are published as pickles
of dicts, lists, strings, numbers and numpy arrays, and nothing else; `RestrictedUnpickler`
resolves only the numpy helpers that rebuild arrays and dtypes (from numpy 1 or 2 pickles, any
protocol) and refuses every other global with `pickle.UnpicklingError` before anything runs.
(`pickle`'s own documentation recommends exactly this: "Restricting Globals".)
"""

from __future__ import annotations

import io
import pickle
from typing import Any, BinaryIO

import numpy as np

_NUMPY_HELPERS = {
    "multiarray": ("_reconstruct", "scalar"),  # ndarray.__reduce__ (protocols 0-4), numpy scalars
    "numeric": ("_frombuffer",),  # ndarray.__reduce_ex__ with protocol 5
}


def _allowed() -> dict[tuple[str, str], Any]:

    core = getattr(np, "_core", None)
    if core is None:  # numpy 1
        core = np.core
    found: dict[tuple[str, str], Any] = {}
    for module, names in _NUMPY_HELPERS.items():
        for name in names:
            obj = getattr(getattr(core, module), name)
            for prefix in ("numpy.core", "numpy._core"):  # a pickle names the module of the numpy that wrote it
                found[(f"{prefix}.{module}", name)] = obj
    found[("numpy", "ndarray")] = np.ndarray
    found[("numpy", "dtype")] = np.dtype
    found[("_codecs", "encode")] = _latin1_encode  # protocol 2 writes bytes as _codecs.encode(str, 'latin1')
    return found


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"bytes encoded as {encoding!r} are not part of the format")
    return text.encode("latin1")


ALLOWED = _allowed()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain data and numpy arrays; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a data file has no reason to contain; refused") from None


def restricted_load(file: BinaryIO, encoding: str = "latin1") -> Any:
    """`pickle.load(file, encoding=...)` that builds only plain data and numpy arrays."""
    return RestrictedUnpickler(file, encoding=encoding).load()


def restricted_loads(data: bytes, encoding: str = "latin1") -> Any:
    return restricted_load(io.BytesIO(data), encoding)
