"""`--update-goldens`: rewrite tests/goldens/ from the current renderers instead of comparing.

pytest registers options only from conftest files it loads at startup, so name this directory
on the command line (`pytest tests/report --update-goldens`), or set
`MODELGUARD_UPDATE_GOLDENS=1` for any invocation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

GOLDENS = Path(__file__).resolve().parent.parent / "goldens"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-goldens",
        action="store_true",
        default=False,
        help="rewrite the golden files under tests/goldens/ instead of comparing to them",
    )


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """Return `check(name, actual)`: compare `actual` to tests/goldens/NAME exactly."""
    update = bool(request.config.getoption("--update-goldens", default=False)) or bool(
        os.environ.get("MODELGUARD_UPDATE_GOLDENS")
    )

    def check(name: str, actual: str) -> None:
        path = GOLDENS / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(actual.encode("utf-8"))
            return
        assert path.exists(), f"missing golden {path}; run pytest --update-goldens"
        expected = path.read_bytes().decode("utf-8")
        assert actual == expected, f"{name} differs from its golden; review, then --update-goldens"

    return check
