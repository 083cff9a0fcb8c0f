"""Every ```python block in README.md runs, so the examples cannot rot.

Each block runs on its own, in a fresh namespace, in an empty temporary working directory, after seeding
Python, NumPy and PyTorch. A block that needs what the test machine cannot have (a pretrained-weights wheel,
a GPU) says so on a line of its own, ``# readme-test: skip (needs ...)``, and is reported as skipped with that
reason. Anything else that fails is a broken example: fix the README (or shorten its training), not this test.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

README = Path(__file__).resolve().parents[2] / "README.md"
SKIP = re.compile(r"^\s*#\s*readme-test:\s*skip\b\s*(.*)$", re.MULTILINE)


def python_blocks(text: str) -> list[tuple[str, str]]:
    """``(id, code)`` per ```python block: the id is the block's line and the heading above it."""
    blocks, heading, code, start = [], "top", None, 0
    for n, line in enumerate(text.splitlines(), 1):
        if code is None:
            if line.startswith("#"):
                heading = re.sub(r"[^a-z0-9]+", "-", line.lstrip("#").strip().lower()).strip("-")
            elif line.strip() == "```python":
                code, start = [], n
        elif line.strip() == "```":
            blocks.append((f"L{start}-{heading}", "\n".join(code)))
            code = None
        else:
            code.append(line)
    return blocks


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("code", [c for _, c in BLOCKS], ids=[i for i, _ in BLOCKS])
def test_readme_python_block_runs(code, tmp_path, monkeypatch):
    skip = SKIP.search(code)
    if skip:
        pytest.skip(skip.group(1).strip(" ()") or "marked readme-test: skip")
    monkeypatch.chdir(tmp_path)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
