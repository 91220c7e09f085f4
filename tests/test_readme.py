"""The README's Python examples and examples/ run as documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_readme_has_examples() -> None:
    assert BLOCKS


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code: str) -> None:
    proc = run(["-c", code])
    assert proc.returncode == 0, proc.stderr


def test_quickstart_runs() -> None:
    proc = run([str(ROOT / "examples" / "quickstart.py")])
    assert proc.returncode == 0, proc.stderr
    assert "gathered [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in proc.stdout
    assert "wait_for timed out" in proc.stdout
    assert "task group: ['task 0', 'task 1', 'task 2']" in proc.stdout
    assert "fetch_all: 500 responses in order: True, errors ['InvalidURL']" in proc.stdout
    assert "sqlite: 1001 users, " in proc.stdout
