"""Bench set-up: the benches take the same implementations as the tests, from tests/support/
(``support.twins.twin_module``), plus the baselines a user would pick.

Run: .venv/bin/pytest benches/ --benchmark-json=bench.json && .venv/bin/python benches/table.py bench.json
"""

from __future__ import annotations

import sys
from pathlib import Path

# the tests' shared helpers (tests/support/), importable as ``support`` by every bench
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
