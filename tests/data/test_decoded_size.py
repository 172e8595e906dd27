"""Small files that decode huge (a few KB of NPZ or ZIP claiming hundreds of MB) are refused from
their headers, before anything is decoded: at upload (`uploads.save`) and when read
(`files.read`, which the New run preview calls inside the web server). Each attack runs in a
fresh process that reports how much its peak memory grew, so the test measures the refusal, not
whatever an earlier test allocated."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from flcore.data import files, uploads
from flcore.data.errors import DataFileError

ROOT = Path(__file__).resolve().parents[2]
LIMIT_MB = 64


def npz_bomb(path: Path, samples: int = 4096, features: int = 8192) -> Path:
    """A valid NPZ: x is `samples` x `features` zeros of uint8 (32 MB raw, 256 MB as 8-byte
    numbers), written in blocks and compressed to a few tens of KB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False, "shape": (samples, features)})
            row_block = bytes(features * 256)
            for _ in range(samples // 256):
                f.write(row_block)
        y = io.BytesIO()
        np.save(y, np.arange(samples) % 2)
        z.writestr("y.npy", y.getvalue())
    return path


def png_bomb(width: int, height: int) -> bytes:
    """A valid greyscale PNG of `width` x `height` zeros, compressed in blocks (no image in memory)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    pack, rows, row = zlib.compressobj(9), [], bytes(1 + width)  # each row: filter byte 0, then pixels
    for _ in range(0, height, 256):
        rows.append(pack.compress(row * 256))
    idat = b"".join(rows) + pack.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zip_bomb(path: Path, side: int = 9000) -> Path:
    """A zipped image folder with two classes: one tiny image and one `side` x `side` PNG (81 MB of pixels)."""
    small = png_bomb(8, 8)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("digits/a/0.png", small)
        z.writestr("digits/b/1.png", png_bomb(side, side))
    return path


ATTACK = textwrap.dedent(
    """
    import json, resource, sys, time
    from pathlib import Path
    from flcore import settings
    from flcore.data import files, uploads

    path, limit = Path(sys.argv[1]), int(sys.argv[2])
    s = settings.Settings(data_dir=Path(sys.argv[3]), max_decoded_mb=limit)
    settings.use(s)
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    before, start, found = peak(), time.monotonic(), {}
    for name, attack in (("upload", lambda: uploads.save(path.read_bytes(), path.name, s, "mallory")), ("read", lambda: files.read(str(path)))):
        try:
            attack()
            found[name] = "accepted"
        except (ValueError, RuntimeError) as err:  # UploadError, DataFileError
            found[name] = str(err)
    print(json.dumps({**found, "grew_mb": peak() - before, "seconds": time.monotonic() - start}))
    """
)


def attack(path: Path, tmp_path: Path, limit_mb: int = LIMIT_MB) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", ATTACK, str(path), str(limit_mb), str(tmp_path / "data")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_small_npz_that_decodes_huge_is_refused_before_it_is_decoded(tmp_path):
    bomb = npz_bomb(tmp_path / "bomb.npz")
    assert bomb.stat().st_size < 100_000  # tens of KB on disk...
    found = attack(bomb, tmp_path)
    for step in ("upload", "read"):  # ...refused, naming the file, what it would take and the limit
        assert "'bomb.npz' would take 288 MB once read" in found[step], found
        assert "array 'x': [4096, 8192] of uint8" in found[step] and f"at most {LIMIT_MB} MB" in found[step], found
    assert found["grew_mb"] < 20 and found["seconds"] < 10, found  # the old reader grew by 926 MB decoding it
    assert not list((tmp_path / "data" / "uploads").glob("*.npz"))  # and it is not kept


def test_a_small_zip_with_a_huge_image_is_refused_before_it_is_decoded(tmp_path):
    bomb = zip_bomb(tmp_path / "bomb.zip")
    assert bomb.stat().st_size < 200_000
    found = attack(bomb, tmp_path)
    for step in ("upload", "read"):
        assert "'bomb.zip' would take 77 MB once read" in found[step] and "is 9,000 x 9,000" in found[step], found
        assert f"at most {LIMIT_MB} MB" in found[step], found
    assert found["grew_mb"] < 20 and found["seconds"] < 10, found
    assert not list((tmp_path / "data" / "uploads").glob("*.zip"))


def test_files_under_the_limit_are_read_and_the_limit_is_a_setting(tmp_path):
    bomb = npz_bomb(tmp_path / "ok.npz", samples=256, features=256)
    assert files.check_decoded_size(str(bomb), "ok.npz", 1) == 256 * 256 * 9 + 256 * 8
    found = attack(bomb, tmp_path, limit_mb=1)
    assert found["upload"] == found["read"] == "accepted", found
    from flcore.settings import Settings

    assert Settings.from_environment({}).max_decoded_mb == 256
    assert Settings.from_environment({"FLCORE_MAX_DECODED_MB": "64"}).max_decoded_mb == 64
    with pytest.raises(ValueError, match="FLCORE_MAX_DECODED_MB='lots' must be a whole number of at least 1"):
        Settings.from_environment({"FLCORE_MAX_DECODED_MB": "lots"})


def test_a_csv_is_bounded_by_lines_times_columns(tmp_path, server_settings):
    path = tmp_path / "wide.csv"
    line = ",".join(["1"] * 1000) + "\n"
    path.write_text("label," + ",".join(f"f{i}" for i in range(999)) + "\n" + line * 300)
    assert files.check_decoded_size(str(path), path.name, 10) == 300 * 1000 * 8
    with pytest.raises(DataFileError, match=r"'wide.csv' would take 2.3 MB once read \(300 lines x 1,000 columns\); .* at most 1 MB"):
        files.check_decoded_size(str(path), path.name, 1)
    with pytest.raises(uploads.UploadError, match="at most 1 MB once read"):
        uploads.save(path.read_bytes(), path.name, server_settings.with_changes(max_decoded_mb=1))


def test_an_npz_header_that_declares_an_impossible_shape_is_refused(tmp_path):
    path = tmp_path / "odd.npz"
    with zipfile.ZipFile(path, "w") as z:
        member = io.BytesIO()
        np.lib.format.write_array_header_1_0(member, {"descr": "<f8", "fortran_order": False, "shape": (2**40, 2**40)})
        z.writestr("x.npy", member.getvalue())
        z.writestr("y.npy", member.getvalue())
    start = time.monotonic()
    with pytest.raises(DataFileError, match=r"would take .* MB once read \(array 'x': \[1099511627776, 1099511627776\] of float64"):
        files.check_decoded_size(str(path), path.name, 512)
    assert time.monotonic() - start < 1
