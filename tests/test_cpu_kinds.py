"""The golden numbers hold on other CPUs' kernels, not only on this machine's.

PyTorch picks its kernels by the CPU's instruction set (`ATEN_CPU_CAPABILITY`: default, avx2,
avx512) and oneDNN, which runs the convolutions, by its own (`ONEDNN_MAX_CPU_ISA`). A golden
test that passes only with this machine's kernels fails on a laptop with AVX2 alone, so the
golden tests run again here in child processes with the older instruction sets forced. (The
whole suite was also run under each before release; this keeps the numbers honest in CI.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KINDS = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_golden_numbers_hold_with_an_older_instruction_set(kind):
    env = {**os.environ, **KINDS[kind]}
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"], env=env, capture_output=True, text=True
    )
    assert probe.stdout.strip() == kind.upper(), probe.stdout + probe.stderr  # the kernels really were switched
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_golden.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
