"""``make clean`` starts over: data and generated keys go, keys/README.md stays."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_make_clean_removes_data_and_generated_keys_only(tmp_path: Path) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    keys = tmp_path / "keys"
    keys.mkdir()
    for tracked in ("README.md", ".gitignore"):
        shutil.copy(ROOT / "keys" / tracked, keys / tracked)
    for generated in ("keyring.json", "abc.jwk.json", "def.key.pem", "def.crt.pem", ".lock"):
        (keys / generated).write_text("generated\n")
    (tmp_path / "instance" / "payroll").mkdir(parents=True)
    (tmp_path / "instance" / "idp.sqlite3").write_text("data\n")
    (tmp_path / "src.py").write_text("kept\n")

    result = subprocess.run(
        ["make", "clean"], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in keys.iterdir()) == [".gitignore", "README.md"]
    assert not (tmp_path / "instance").exists()
    assert (tmp_path / "src.py").read_text() == "kept\n"
