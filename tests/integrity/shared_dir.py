"""Where the team's shared interop data lives, and a skip marker for when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
SHARED = PROJECT.parent / "shared"
OMS_DIR = SHARED / "interop" / "oms"

needs_oms = pytest.mark.skipif(
    not (OMS_DIR / "vectors").is_dir(),
    reason=f"the OMS interop vectors are not present at {OMS_DIR} (../shared/interop/oms)",
)
