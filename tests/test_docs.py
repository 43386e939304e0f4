"""The documentation that is generated stays in step with the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_data_contract_doc_is_current() -> None:
    spec = importlib.util.spec_from_file_location("write_contract_doc", ROOT / "scripts" / "write_contract_doc.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    on_disk = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert on_disk == module.render(), "run: python scripts/write_contract_doc.py"
