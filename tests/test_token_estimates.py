"""The estimate-error table in docs/token-counting.md is the one the recordings give."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _script() -> Any:
    path = ROOT / "benchmarks" / "token_estimate_error.py"
    spec = importlib.util.spec_from_file_location("token_estimate_error", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_documented_table_is_measured() -> None:
    script = _script()
    rows = script.measure()
    assert len(rows) == 67
    doc = (ROOT / "docs" / "token-counting.md").read_text()
    start = doc.index(script.BEGIN) + len(script.BEGIN)
    documented = doc[start : doc.index(script.END)].strip()
    assert documented == script.table(rows), (
        "docs/token-counting.md is stale: run "
        "python benchmarks/token_estimate_error.py --write-docs"
    )


def test_the_estimate_is_within_its_documented_worst_cases() -> None:
    rows = _script().measure()
    for row in rows:
        assert -80 <= row.error <= 700, row
