"""docs/security.md names only tests that exist: its threat model stays true as tests move."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`")


def test_every_test_the_threat_model_names_exists() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    named: list[tuple[str, str | None]] = []
    path = None
    for match in REFERENCE.finditer(text):
        if match.group(1) is None and match.group(2) is None:
            continue
        path = match.group(1) or path
        assert path is not None, f"::{match.group(2)} before any file"
        named.append((path, match.group(2)))
    assert len(named) > 60
    missing = []
    for path, name in named:
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
            continue
        if name is not None:
            tree = ast.parse(file.read_text())
            functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
            if name not in functions:
                missing.append(f"{path}::{name}")
    assert missing == []
