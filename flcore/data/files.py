"""A dataset of one's own: a CSV, an NPZ or a zipped image folder, read into a train/test split.

- CSV (`.csv`, or `.tsv` for tab-separated): a header line, then one sample per line, its
  separator found by csv.Sniffer in the first lines (commas, semicolons, tabs, vertical bars).
  The column `label_column` holds the labels (numbers or words); the optional `client_column`
  names the client each row belongs to, which gives the natural split; `drop_columns` are left
  out; every other column is a feature: numbers (a whole column written with thousands
  separators, 1,234.5 or 1.234,5, is read as such), true/false (1/0), dates (days since
  1970-01-01) or words (one-hot encoded, at most MAX_CATEGORIES a column). Empty cells follow
  `missing_values` (impute with scikit-learn's SimpleImputer, drop the rows, or refuse). What
  reading changed is kept as `Table.notes` and logged once per file version.
- NPZ (`numpy.savez`): array `x` ([samples, features], [samples, height, width] or [samples,
  channels, height, width]) of numbers, `y` (one label per sample), optionally `client` (one
  client per sample: the natural split) and optionally `x_test` and `y_test`, which then are the
  test split. Arrays of Python objects are not read (`allow_pickle` stays off).
- ZIP of an image folder, as torchvision's ImageFolder: one folder per class holding its
  images (.png, .jpg, .jpeg, .bmp, .gif, .tif, .tiff, .webp), possibly all inside one top
  folder; top folders `train/` and `test/`, each with the class folders, give the test split.
  Images are read from the archive in memory (nothing is extracted). All become greyscale if
  every image is, else RGB; all take the most common image size, scaled down (keeping its
  aspect ratio) so that no side exceeds 64 pixels. Files other than images, hidden files and
  `__MACOSX/` are skipped.

Labels become classes 0..C-1 in sorted order, keeping their names. Without a test split in the
file, 20% of each class is held out for testing, drawn with a seed taken from the file's
content (SHA-256), so the split belongs to the file, not to the experiment. Features are
standardised with the training split's mean and standard deviation (per column, or per image
channel). Natural client ids number the clients that have training samples, 0..K-1 in sorted
order. Anything wrong with a file raises `DataFileError` with a sentence that names the file
and the column, line, array or image at fault, and the setting to change.
A file is read once for each version of it (its size and modification time).

A small file can decode to a great deal (an NPZ or a ZIP is compressed: 50 KB of zeros can claim
a 1 GB array), so before anything is decoded `decoded_size` works out, from headers alone, what
the file takes once read: the arrays an NPZ's headers declare (and its features again as 8-byte
numbers), a ZIP's uncompressed members and each image's pixels as its header gives their size
(and the samples made of them), a CSV's lines x columns as 8-byte numbers. A file over the
server setting `max_decoded_mb` is refused in a sentence naming the file, its decoded size and
the limit. Reading one under it takes up to about 3.5 times that at its peak (an NPZ counted
at 288 MB grew a process by 926 MB), so the default of 256 MB keeps a preview under 1 GB.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import logging
import math
import os
import re
import zipfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from flcore.data.datasets import DATASETS, Dataset, DatasetInfo, DatasetSpec
from flcore.data.errors import DataFileError
from flcore.problems import shown

if TYPE_CHECKING:
    from flcore.config import ExperimentConfig
    from flcore.settings import Settings

TEST_FRACTION = 0.2
MAX_CLASSES = 1000
MAX_IMAGE_SIDE = 64
NUMBER_BYTES = 8  # features are read as float64
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
KINDS = "a CSV (.csv, .tsv), an NPZ (.npz) or a zipped image folder (.zip)"
MAX_CATEGORIES = 50  # distinct words a text column may hold to be one-hot encoded
MANY_CLASSES, ROWS_PER_CLASS = 50, 20  # a label past both looks like a number to predict
MISSING_VALUES = ("impute", "drop_rows", "refuse")
SEPARATORS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Table:
    """A file's samples, split and standardised."""

    x_train: np.ndarray  # float32 [n, *shape]
    y_train: np.ndarray  # int64 [n], 0..C-1
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    train_clients: np.ndarray | None  # int64 [n], 0..K-1, or None without a client column
    notes: tuple[str, ...] = ()  # what reading changed (a separator found, rows dropped, cells filled), one sentence each


@dataclass(frozen=True)
class Options:
    """How a file's columns and labels are read: the config fields of the same names."""

    drop_columns: tuple[str, ...] = ()  # CSV columns left out
    missing_values: str = "impute"  # an empty CSV cell: "impute", "drop_rows" or "refuse"
    allow_many_classes: bool = False  # a label with many classes of few rows each is a class after all


def column_names(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """'id, name' (or ['id', 'name']) as the column names ('id', 'name')."""
    parts = value.split(",") if isinstance(value, str) else value
    return tuple(p.strip() for p in parts if p.strip())


@dataclass(frozen=True)
class _Raw:
    """What a reader found, before the split: features, labels and clients as in the file."""

    x: np.ndarray  # float [n, *shape]
    labels: np.ndarray  # [n], any sortable values
    clients: np.ndarray | None = None
    x_test: np.ndarray | None = None  # a test split the file provides
    labels_test: np.ndarray | None = None


def read(
    path: str,
    label_column: str = "label",
    client_column: str = "",
    max_decoded_mb: int | None = None,
    options: Options = Options(),
    name: str | None = None,
) -> Table:
    """The file at `path`, split and standardised (see the module doc), refused when its samples
    would take more than `max_decoded_mb` once read (the server's setting when not given).
    `name` is how sentences name the file (an upload's original name; its own name when not given)."""
    if not path:
        raise DataFileError(f"dataset='file' needs data_file: the path of {KINDS}")
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(full):
        raise DataFileError(f"data_file={shown(path)} does not exist" + (" (it is a folder)" if os.path.isdir(full) else ""))
    stat = os.stat(full)
    if max_decoded_mb is None:
        from flcore import settings

        max_decoded_mb = settings.current().max_decoded_mb
    if options.missing_values not in MISSING_VALUES:
        raise DataFileError(f"missing_values={options.missing_values!r} is not one of: {', '.join(MISSING_VALUES)}", "missing_values")
    limit_mb = max_decoded_mb
    shown_name = name or os.path.basename(full)
    return _read(full, stat.st_size, stat.st_mtime_ns, label_column, client_column, limit_mb, options, shown_name)


@functools.lru_cache(maxsize=4)
def _read(full: str, size: int, mtime_ns: int, label_column: str, client_column: str, limit_mb: int, options: Options, name: str) -> Table:
    """Read once per version of the file and settings; the notes are logged here, so once."""
    notes: list[str] = []
    table = _read_table(full, name, label_column, client_column, limit_mb, options, notes)
    for note in table.notes:
        log.warning(note)
    return table


def _read_table(full: str, name: str, label_column: str, client_column: str, limit_mb: int, options: Options, notes: list[str]) -> Table:
    suffix = os.path.splitext(full)[1].lower()
    check_decoded_size(full, name, limit_mb)
    if suffix in (".csv", ".tsv"):
        sep = separator(full)
        if sep != ("\t" if suffix == ".tsv" else ","):
            notes.append(f"{name!r} is read as separated by {SEPARATORS[sep]} (found in its first lines)")
        raw = _read_csv(full, name, label_column, client_column, sep, options, notes)
    elif suffix == ".npz":
        raw = _read_npz(full, name)
    elif suffix == ".zip":
        raw = _read_zip(full, name)
    else:
        raise DataFileError(f"data_file {name!r} is not a kind flcore reads: give {KINDS}")
    if len(raw.labels) == 0:
        raise DataFileError(f"data_file {name!r} holds no samples")
    field = "label_column" if suffix in (".csv", ".tsv") else "data_file"
    table = _split(raw, name, _content_seed(full), field, options.allow_many_classes)
    return replace(table, notes=tuple(notes))


def check_readable(path: str, name: str) -> None:
    """DataFileError, naming the file as `name`, when the file at `path` cannot be read as its
    kind at all (columns and labels are checked against a config later, by `read`)."""
    suffix = os.path.splitext(name)[1].lower()
    if suffix in (".csv", ".tsv"):
        frame = _frame(path, name, separator(path, name))
        if frame.isna().all(axis=1).all():
            raise DataFileError(f"{name!r} has a header line but no samples")
        if frame.shape[1] < 2:  # a label and nothing to learn it from, or a separator that is not there
            raise DataFileError(
                f"{name!r} has one column ({shown(str(frame.columns[0]))}): a table needs a label column and at least one "
                f"feature column; separate its columns with commas, semicolons, tabs or vertical bars"
            )
    elif suffix == ".npz":
        _read_npz(path, name)
    elif suffix == ".zip":
        _read_zip(path, name)
    else:
        raise DataFileError(f"data_file {name!r} is not a kind flcore reads: give {KINDS}")


def separator(path: str, name: str = "") -> str:
    """The separator of a CSV or TSV: tab for `.tsv` (by `name`, else the path's own name); else
    the one of `SEPARATORS` Python's csv.Sniffer finds in its first 64 KB (commas when it finds
    none, e.g. a single column)."""
    if (name or path).lower().endswith(".tsv"):
        return "\t"
    with open(path, "rb") as f:
        sample = f.read(2**16).decode("utf-8", errors="ignore")
    lines = sample.splitlines()
    sample = "\n".join(lines[:-1] if len(lines) > 1 else lines)  # the last line may be cut
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(SEPARATORS)).delimiter
    except csv.Error:
        return ","


# What a file takes once read -----------------------------------------------------------
def check_decoded_size(path: str, name: str, limit_mb: int) -> int:
    """The bytes the file at `path` takes once read (see the module doc), from its headers alone;
    DataFileError, naming the file, its decoded size and the limit, when over `limit_mb` MB."""
    suffix = os.path.splitext(name)[1].lower()
    limit = limit_mb * 2**20
    if suffix in (".csv", ".tsv"):
        size, what = _csv_size(path, separator(path, name))
    elif suffix == ".npz":
        size, what = _npz_size(path, name, limit)
    elif suffix == ".zip":
        size, what = _zip_size(path, name, limit)
    else:
        return 0  # not a kind flcore reads: the reader says so
    if size > limit:
        raise DataFileError(
            f"{name!r} would take {_mb(size)} once read ({what}); this server reads data files of at most {limit_mb:,} MB "
            "once read (FLCORE_MAX_DECODED_MB): use fewer or smaller samples"
        )
    return size


def _mb(n: int) -> str:
    return f"{n / 2**20:,.0f} MB" if n >= 10 * 2**20 else f"{n / 2**20:.1f} MB"


def _csv_size(path: str, sep: str) -> tuple[int, str]:
    """Lines x columns (from the header line) as 8-byte numbers: an upper bound, counted in blocks."""
    with open(path, "rb") as f:
        header = f.readline()
        columns = header.count(sep.encode()) + 1
        lines, last = 0, b"\n"
        for block in iter(lambda: f.read(2**20), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    lines += last != b"\n"
    return lines * columns * NUMBER_BYTES, f"{lines:,} lines x {columns:,} columns"


_NPZ_ARRAYS = ("x", "y", "client", "x_test", "y_test")


def _npz_size(path: str, name: str, limit: int) -> tuple[int, str]:
    """The arrays the reader loads, as their headers declare them, and x and x_test again as 8-byte numbers."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return 0, ""  # a single .npy, or not an NPZ at all: the reader says which
    total, shown = 0, []
    with archive:
        members = {m.filename.removesuffix(".npy"): m for m in archive.infolist()}
        for key in _NPZ_ARRAYS:
            member = members.get(key)
            if member is None:
                continue
            if member.file_size > limit:
                total += member.file_size
                shown.append(f"array {key!r}: {_mb(member.file_size)} uncompressed")
                continue
            try:
                with archive.open(member) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                    elif version == (2, 0):
                        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                    else:
                        raise ValueError(f"array format version {version} is not one numpy.savez writes for numbers")
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
                raise DataFileError(f"array {key!r} of {name!r} could not be read: {e}") from None
            if any(d < 0 for d in shape):
                raise DataFileError(f"array {key!r} of {name!r} declares the shape {list(shape)}, which no array has")
            count = math.prod(shape)
            size = count * (0 if dtype.hasobject else dtype.itemsize)  # objects are refused unread
            if key in ("x", "x_test"):
                size += count * NUMBER_BYTES
            total += size
            shown.append(f"array {key!r}: {list(shape)} of {dtype}")
    return total, ", ".join(shown)


_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "I;16": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}


def _zip_size(path: str, name: str, limit: int) -> tuple[int, str]:
    """The images' uncompressed bytes, or, once those are under the limit, their pixels as each
    image's header gives its size and mode, plus the samples made of them (8-byte numbers)."""
    from PIL import Image

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        return 0, ""  # the reader says what is wrong
    with archive:
        images = [
            e for e in archive.infolist() if not e.is_dir() and not _hidden(e.filename) and e.filename.lower().endswith(IMAGE_SUFFIXES)
        ]
        packed = sum(e.file_size for e in images)
        if packed > limit:
            return packed, f"{len(images):,} images of {_mb(packed)} uncompressed"
        pixels, sizes, grey = 0, Counter(), True
        for i, entry in enumerate(images):
            try:
                with archive.open(entry) as f, Image.open(f) as img:  # reads the header only
                    (width, height), mode = img.size, img.mode
            except (OSError, ValueError, Image.DecompressionBombError, zipfile.BadZipFile):
                continue  # the reader names the image that cannot be read
            pixels += width * height * _BYTES_PER_PIXEL.get(mode, 4)
            if pixels > limit:
                return (
                    pixels,
                    f"the first {i + 1:,} of its {len(images):,} images hold {_mb(pixels)} of pixels; {entry.filename!r} is {width:,} x {height:,}",
                )
            sizes[width, height] += 1
            grey = grey and mode in _GREY
    if not sizes:
        return pixels, ""
    width, height = _target_size(sizes.most_common(1)[0][0])
    samples = len(images) * (1 if grey else 3) * width * height * NUMBER_BYTES
    return pixels + samples, f"{len(images):,} images of {_mb(pixels)} of pixels, then {_mb(samples)} as {width} x {height} samples"


def _shown(value) -> str:
    """A value from the file as a sentence shows it: 'Paris', 3, inf (numpy scalars as plain ones)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _content_seed(path: str) -> int:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return int.from_bytes(digest.digest()[:8], "little")


# The split ------------------------------------------------------------------------------
def _split(raw: _Raw, name: str, seed: int, label_field: str, allow_many_classes: bool = False) -> Table:
    labels = raw.labels if raw.labels_test is None else np.concatenate([raw.labels, raw.labels_test])
    codes, classes = _classes(labels, name, label_field, allow_many_classes)
    if raw.x_test is None:
        train, test = _stratified(codes, np.random.default_rng(seed))
        x_train, y_train, x_test, y_test = raw.x[train], codes[train], raw.x[test], codes[test]
        clients = None if raw.clients is None else raw.clients[train]
    else:
        n = len(raw.labels)
        x_train, y_train, x_test, y_test = raw.x, codes[:n], raw.x_test, codes[n:]
        clients = raw.clients
    mean, std = _stats(x_train)
    return Table(
        ((x_train - mean) / std).astype(np.float32),
        y_train.astype(np.int64),
        ((x_test - mean) / std).astype(np.float32),
        y_test.astype(np.int64),
        classes,
        None if clients is None else pd.factorize(clients, sort=True)[0].astype(np.int64),
    )


def _classes(labels: np.ndarray, name: str, field: str, allow_many: bool = False) -> tuple[np.ndarray, tuple[str, ...]]:
    if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
        labels = labels.astype(np.int64)  # 1.0, 2.0 are the classes 1 and 2
    codes, uniques = pd.factorize(labels, sort=True)
    where = f"label_column of {name!r}" if field == "label_column" else f"the labels of {name!r}"
    if len(uniques) < 2:
        raise DataFileError(f"{where} hold a single class ({_shown(uniques[0])}); a classifier needs at least two", field)
    if len(uniques) > MAX_CLASSES:
        raise DataFileError(
            f"{where} hold {len(uniques):,} different values, more than the {MAX_CLASSES} classes flcore allows: "
            "is it a number to predict rather than a class?",
            field,
        )
    if len(uniques) > MANY_CLASSES and len(labels) < ROWS_PER_CLASS * len(uniques) and not allow_many:
        raise DataFileError(
            f"{where} hold {len(uniques):,} different values over {len(labels):,} samples ({len(labels) / len(uniques):.1f} per class): "
            f"a number to predict rather than a class? flcore trains classifiers; choose another label column, or, if these are "
            f"classes, set allow_many_classes=true (refused past {MANY_CLASSES} classes with under {ROWS_PER_CLASS} samples each on average)",
            field,
        )
    return codes.astype(np.int64), tuple(str(u) for u in uniques)


def _stratified(codes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """TEST_FRACTION of each class for testing, the rest for training (both in file order)."""
    is_test = np.zeros(len(codes), dtype=bool)
    for c in range(int(codes.max()) + 1):
        members = np.flatnonzero(codes == c)
        is_test[rng.choice(members, round(len(members) * TEST_FRACTION), replace=False)] = True
    return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over the training samples: per feature (tables), per channel (images)."""
    axes = (0,) if x.ndim == 2 else (0, 2, 3)
    mean, std = x.mean(axis=axes, keepdims=True), x.std(axis=axes, keepdims=True)
    return mean, np.where(std > 1e-8, std, 1.0)


# CSV ------------------------------------------------------------------------------------
_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
# Numbers written with thousands separators, as a whole column: (pattern, thousands mark, decimal mark).
_COMMA_THOUSANDS = (re.compile(r"[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?"), ",", ".")
_DECIMAL_COMMA = (re.compile(r"[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?"), ".", ",")
_DATE = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}|\d{4}/\d{1,2}/\d{1,2}"
)
_MISSING_HELP = "set missing_values='impute' (a column's mean, or its most frequent word) or 'drop_rows' (leave the row out)"


def _frame(path: str, name: str, sep: str) -> pd.DataFrame:
    """The CSV as pandas reads it (blank lines kept, so that row i is line i + 2)."""
    try:
        frame = pd.read_csv(path, sep=sep, skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise DataFileError(
            f"data_file {name!r} is empty: a CSV needs a header line naming its columns, then one line per sample"
        ) from None
    except pd.errors.ParserError as e:
        found = _RAGGED.search(str(e))
        if found:
            expected, line, saw = found.groups()
            raise DataFileError(f"{name!r} line {line} has {saw} values, but the header names {expected} columns") from None
        raise DataFileError(f"{name!r} is not a valid CSV: {e}") from None
    except UnicodeDecodeError:
        raise DataFileError(f"{name!r} is not a text file in UTF-8; save it as a UTF-8 CSV") from None
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _read_csv(path: str, name: str, label_column: str, client_column: str, sep: str, options: Options, notes: list[str]) -> _Raw:
    frame = _frame(path, name, sep)
    columns = ", ".join(frame.columns)
    if label_column not in frame.columns:
        raise DataFileError(f"label_column={label_column!r} is not a column of {name!r}; its columns are: {columns}", "label_column")
    if client_column and client_column not in frame.columns:
        raise DataFileError(f"client_column={client_column!r} is not a column of {name!r}; its columns are: {columns}", "client_column")
    if client_column == label_column:
        raise DataFileError(f"client_column={client_column!r} is also label_column; choose another column or none", "client_column")
    for title in options.drop_columns:
        if title not in frame.columns:
            raise DataFileError(
                f"drop_columns names {title!r}, which is not a column of {name!r}; its columns are: {columns}", "drop_columns"
            )
        if title in (label_column, client_column):
            field = "label_column" if title == label_column else "client_column"
            raise DataFileError(f"drop_columns names {title!r}, which is {field}; it cannot be left out", "drop_columns")
    frame = frame.drop(columns=list(options.drop_columns))
    frame = frame[~frame.isna().all(axis=1)]  # blank lines (kept until now so that row i stays line i + 2)
    if frame.empty:
        raise DataFileError(f"{name!r} has a header line but no samples")
    features = [c for c in frame.columns if c not in (label_column, client_column)]
    if not features:
        raise DataFileError(f"{name!r} has no feature columns besides label_column={label_column!r}; add columns of numbers")
    kept = [(field, title) for field, title in (("label_column", label_column), ("client_column", client_column)) if title]
    for field, title in kept:
        empty = frame[title].isna()
        if empty.any() and options.missing_values == "refuse":
            raise DataFileError(
                f"{name!r} line {_line(empty.idxmax())}: {field}={title!r} is empty; set missing_values='drop_rows' "
                "or 'impute' to leave such rows out",
                field,
            )
        if empty.any():
            count = int(empty.sum())
            rows = "1 row with an empty" if count == 1 else f"{count:,} rows with an empty"
            notes.append(f"{name!r}: {rows} {field} ({title!r}) {'is' if count == 1 else 'are'} left out")
            frame = frame[~empty]
    table = pd.DataFrame({c: _feature(frame[c], name, c, sep, notes) for c in features}, index=frame.index)
    table = _fill(table, name, options.missing_values, notes)
    categorical = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if categorical:
        table = pd.get_dummies(table, columns=categorical, prefix_sep="=", dtype=np.float64)
    labels = frame.loc[table.index, label_column].to_numpy()
    clients = frame.loc[table.index, client_column].to_numpy() if client_column else None
    return _Raw(table.to_numpy(np.float64), labels, clients)


def _line(frame_index: int) -> int:
    return int(frame_index) + 2  # the header is line 1


def _feature(column: pd.Series, name: str, title: str, sep: str, notes: list[str]) -> pd.Series:
    """A feature column as numbers (true/false as 1/0, dates as days since 1970-01-01) or, for
    words, as strings that will be one-hot encoded; empty cells stay NaN."""
    if column.dtype == bool:
        return column.astype(np.float64)
    if pd.api.types.is_numeric_dtype(column):
        values = column.astype(np.float64)
        bad = np.isinf(values)
        if bad.any():
            i = bad.idxmax()
            raise DataFileError(f"{name!r} line {_line(i)}: column {title!r} holds {_shown(column[i])}, which is not a finite number")
        return values
    present = column.dropna().astype(str).str.strip()
    if present.empty:
        return column.astype(np.float64)  # every cell empty: missing_values decides
    if present.str.lower().isin(("true", "false")).all():  # true/false with an empty cell: pandas keeps them as text
        return (present.str.lower() == "true").astype(np.float64).reindex(column.index)
    for pattern, thousands, decimal in (_COMMA_THOUSANDS, _DECIMAL_COMMA) if sep == "," else (_DECIMAL_COMMA, _COMMA_THOUSANDS):
        if present.str.fullmatch(pattern).all():
            notes.append(
                f"column {title!r} of {name!r} is read as numbers with {thousands!r} between thousands and {decimal!r} before decimals"
            )
            text = present.str.replace(thousands, "", regex=False).str.replace(decimal, ".", regex=False)
            return pd.to_numeric(text).reindex(column.index).astype(np.float64)
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().mean() >= 0.5:  # mostly numbers: the others are typos, not categories
        i = numbers.isna().idxmax()
        raise DataFileError(
            f"column {title!r} of {name!r} holds numbers, but line {_line(i)} holds {_shown(column[i])}: write it as a number "
            f"(digits, '.' before decimals, e.g. 1234.5; ',' between thousands is read too) or leave the cell empty, "
            f"or leave the column out with drop_columns={title!r}",
            "drop_columns",
        )
    if present.str.fullmatch(_DATE).all():
        dates = pd.to_datetime(present, errors="coerce", format="mixed", utc=True)
        if dates.notna().all():
            notes.append(f"column {title!r} of {name!r} holds dates: read as days since 1970-01-01")
            days = (dates - pd.Timestamp("1970-01-01", tz="UTC")) / pd.Timedelta(days=1)
            return days.reindex(column.index).astype(np.float64)
    words = present.nunique()
    if words > MAX_CATEGORIES:
        examples = ", ".join(repr(w) for w in present.unique()[:3])
        raise DataFileError(
            f"column {title!r} of {name!r} holds {words:,} different words ({examples}, ...), more than the {MAX_CATEGORIES} "
            f"categories a text column may have: leave it out with drop_columns={title!r}, or name it as label_column or client_column",
            "drop_columns",
        )
    notes.append(f"column {title!r} of {name!r} holds words: one-hot encoded as {words} columns")
    return present.reindex(column.index).astype(object)


def _fill(table: pd.DataFrame, name: str, missing_values: str, notes: list[str]) -> pd.DataFrame:
    """Empty cells of the features, as `missing_values` says: refused, rows left out, or filled
    (scikit-learn's SimpleImputer: a number column's mean, a word column's most frequent word)."""
    empty = table.isna()
    if not empty.to_numpy().any():
        return table
    rows = empty.any(axis=1)
    first = rows.idxmax()
    if missing_values == "refuse":
        title = empty.columns[empty.loc[first].to_numpy().argmax()]
        raise DataFileError(f"{name!r} line {_line(first)}: column {title!r} is empty; {_MISSING_HELP}", "missing_values")
    if missing_values == "drop_rows":
        if rows.all():
            raise DataFileError(
                f"every row of {name!r} has an empty cell, so missing_values='drop_rows' leaves none; set missing_values='impute'",
                "missing_values",
            )
        notes.append(
            f"{name!r}: {int(rows.sum()):,} of {len(table):,} rows have an empty cell and are left out (missing_values='drop_rows')"
        )
        return table[~rows]
    from sklearn.impute import SimpleImputer

    out = table.copy()
    for title in table.columns[empty.any().to_numpy()]:
        if empty[title].all():
            raise DataFileError(
                f"column {title!r} of {name!r} is empty in every row: leave it out with drop_columns={title!r}", "drop_columns"
            )
        numeric = pd.api.types.is_numeric_dtype(table[title])
        imputer = SimpleImputer(strategy="mean" if numeric else "most_frequent")
        column = table[[title]].astype(np.float64 if numeric else object)
        out[title] = imputer.fit_transform(column)[:, 0]
        if numeric:
            out[title] = out[title].astype(np.float64)
    notes.append(
        f"{name!r}: {int(rows.sum()):,} of {len(table):,} rows have an empty cell, filled with its column's mean (numbers) "
        "or most frequent word (missing_values='impute')"
    )
    return out


# NPZ ------------------------------------------------------------------------------------
_NPZ_SHAPES = "[samples, features], [samples, height, width] or [samples, channels, height, width]"


def _read_npz(path: str, name: str) -> _Raw:
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataFileError(f"{name!r} is not a valid NPZ file (numpy.savez): {e}") from None
    with archive:
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataFileError(f"{name!r} holds a single array; an NPZ needs the arrays x and y (numpy.savez(path, x=..., y=...))")
        keys = set(archive.files)
        missing = [k for k in ("x", "y") if k not in keys]
        if missing:
            raise DataFileError(
                f"{name!r} has no array {missing[0]!r} (it has: {', '.join(sorted(keys)) or 'none'}); "
                "an NPZ needs x and y, optionally client, x_test and y_test"
            )
        if ("x_test" in keys) != ("y_test" in keys):
            raise DataFileError(f"{name!r} has only one of x_test and y_test; give both (a test split) or neither")
        arrays = {k: _array(archive, k, name) for k in ("x", "y", "client", "x_test", "y_test") if k in keys}
    x = _features(arrays["x"], "x", name)
    _one_per_sample(arrays["y"], "y", len(x), name)
    clients = arrays.get("client")
    if clients is not None:
        _one_per_sample(clients, "client", len(x), name)
    x_test = labels_test = None
    if "x_test" in arrays:
        x_test = _features(arrays["x_test"], "x_test", name)
        if x_test.shape[1:] != x.shape[1:]:
            raise DataFileError(f"{name!r}: 'x_test' has samples of shape {list(x_test.shape[1:])} but 'x' of {list(x.shape[1:])}")
        labels_test = arrays["y_test"]
        _one_per_sample(labels_test, "y_test", len(x_test), name)
    return _Raw(x, arrays["y"], clients, x_test, labels_test)


def _array(archive, key: str, name: str) -> np.ndarray:
    try:
        return archive[key]
    except ValueError as e:  # object arrays: numpy refuses them without allow_pickle
        raise DataFileError(
            f"array {key!r} of {name!r} holds Python objects, which flcore does not read; save numbers or strings ({e})"
        ) from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataFileError(f"array {key!r} of {name!r} could not be read: {e}") from None


def _features(x: np.ndarray, key: str, name: str) -> np.ndarray:
    if x.dtype.kind not in "biuf":
        raise DataFileError(f"array {key!r} of {name!r} must hold numbers, found {x.dtype}")
    if x.ndim == 1:
        x = x[:, None]
    elif x.ndim == 3:
        x = x[:, None]  # [samples, height, width]: one channel
    elif x.ndim not in (2, 4):
        raise DataFileError(f"array {key!r} of {name!r} has shape {list(x.shape)}; expected {_NPZ_SHAPES}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        i = int(np.flatnonzero(~np.isfinite(x.reshape(len(x), -1)).all(axis=1))[0])
        raise DataFileError(f"array {key!r} of {name!r}: sample {i} holds NaN or an infinite value")
    return x


def _one_per_sample(values: np.ndarray, key: str, n: int, name: str) -> None:
    if values.ndim != 1 or len(values) != n:
        raise DataFileError(
            f"array {key!r} of {name!r} has shape {list(values.shape)}, but there are {n} samples: it needs one value per sample"
        )
    if values.dtype.kind == "f" and np.isnan(values).any():
        raise DataFileError(f"array {key!r} of {name!r}: sample {int(np.flatnonzero(np.isnan(values))[0])} is NaN")


# ZIP of an image folder -------------------------------------------------------------------
_GREY = {"1", "L", "LA", "I", "I;16", "F"}


def _read_zip(path: str, name: str) -> _Raw:
    from PIL import Image

    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DataFileError(f"{name!r} is not a valid ZIP file: {e}") from None
    with archive:
        entries = [e for e in archive.infolist() if not e.is_dir() and not _hidden(e.filename)]
        images = sorted((e for e in entries if e.filename.lower().endswith(IMAGE_SUFFIXES)), key=lambda e: e.filename)
        if not images:
            raise DataFileError(
                f"{name!r} holds no images ({', '.join(IMAGE_SUFFIXES)}); zip a folder with one sub-folder of images per class"
            )
        paths = _class_paths([e.filename for e in images], name)
        opened = [_open_image(archive, e, name, Image) for e in images]
    grey = all(img.mode in _GREY for img in opened)
    width, height = _target_size(Counter(img.size for img in opened).most_common(1)[0][0])
    x = np.stack([_pixels(img, grey, (width, height), Image) for img in opened])
    labels = np.array([parts[-2] for parts in paths])
    split = np.array([parts[0] if len(parts) == 3 else "" for parts in paths])
    if (split == "").all():
        return _Raw(x, labels)
    test = split == "test"
    return _Raw(x[~test], labels[~test], None, x[test], labels[test])


def _hidden(filename: str) -> bool:
    parts = PurePosixPath(filename).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _class_paths(filenames: list[str], name: str) -> list[tuple[str, ...]]:
    """Each image's (class, file) or (train|test, class, file), with a shared top folder removed."""
    paths = [PurePosixPath(f).parts for f in filenames]
    while all(len(p) > 2 for p in paths) and len({p[0] for p in paths}) == 1 and paths[0][0] not in ("train", "test"):
        paths = [p[1:] for p in paths]
    split = {p[0] for p in paths if len(p) == 3} == {"train", "test"} and all(len(p) == 3 for p in paths)
    for p, f in zip(paths, filenames):
        if len(p) < 2:
            raise DataFileError(
                f"image {f!r} in {name!r} is not inside a class folder; put each class's images in a folder named after the class"
            )
        if len(p) > 2 and not split:
            raise DataFileError(
                f"image {f!r} in {name!r} is nested too deep: use one folder per class (or train/ and test/ folders, each with one folder per class)"
            )
    return paths


def _open_image(archive: zipfile.ZipFile, entry: zipfile.ZipInfo, name: str, Image):
    try:
        img = Image.open(io.BytesIO(archive.read(entry)))
        img.load()
        return img
    except (OSError, ValueError, Image.DecompressionBombError, zipfile.BadZipFile) as e:  # PIL's UnidentifiedImageError is an OSError
        raise DataFileError(f"image {entry.filename!r} in {name!r} could not be read as an image ({e})") from None


def _target_size(size: tuple[int, int]) -> tuple[int, int]:
    """The most common size, scaled down to fit MAX_IMAGE_SIDE, keeping the aspect ratio."""
    width, height = size
    scale = min(1.0, MAX_IMAGE_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _pixels(img, grey: bool, size: tuple[int, int], Image) -> np.ndarray:
    img = img.convert("L" if grey else "RGB")
    if img.size != size:
        img = img.resize(size, Image.Resampling.BILINEAR)
    array = np.asarray(img, dtype=np.float64) / 255.0
    return array[None] if grey else array.transpose(2, 0, 1)


# Registration -----------------------------------------------------------------------------
def _file_info(config: "ExperimentConfig", settings: "Settings") -> DatasetInfo:
    return _load_file(config, settings).info


def reading_notes(config: "ExperimentConfig", settings: "Settings") -> tuple[str, ...]:
    """What reading the data file of `config` changed (`Table.notes`), read as its run reads it
    (once per version of the file). Raises DataFileError when it cannot be read, or is gone."""
    return _table(config, settings).notes


def _table(config: "ExperimentConfig", settings: "Settings") -> Table:
    from flcore.data.upload_index import original_name

    options = Options(column_names(config.drop_columns), config.missing_values, config.allow_many_classes)
    name = original_name(config.data_file, settings)  # an upload by the name it was sent with, not its hash
    return read(config.data_file, config.label_column, config.client_column, settings.max_decoded_mb, options, name)


def _load_file(config: "ExperimentConfig", settings: "Settings") -> Dataset:
    table = _table(config, settings)
    info = DatasetInfo(
        tuple(table.x_train.shape[1:]),
        len(table.class_names),
        table.class_names,
        offline=True,
        natural_clients=None if table.train_clients is None else int(table.train_clients.max()) + 1,
    )
    return Dataset(
        "file",
        info,
        torch.from_numpy(table.x_train),
        torch.from_numpy(table.y_train),
        torch.from_numpy(table.x_test),
        torch.from_numpy(table.y_test),
        train_clients=table.train_clients,
    )


DATASETS.register(
    "file",
    label="A file of your own",
    description="A CSV (feature columns of numbers, words or dates, a label column, optionally a client column), an NPZ "
    "(x, y, optionally client) or a zipped image folder (one sub-folder per class); split 80/20 with a seed taken from the file's content.",
    params=("data_file", "label_column", "client_column", "drop_columns", "missing_values", "allow_many_classes"),
)(DatasetSpec(DatasetInfo((), 0, (), offline=True), _load_file, read_info=_file_info, size="as large as your file"))
