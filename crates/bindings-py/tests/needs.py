"""Optional test dependencies: skipped when missing on a developer's machine, a failure under CI
(scripts/python-env.sh installs them, so a missing one there is a broken set-up, not a skip)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def module(name: str) -> ModuleType:
    """Imports `name`, or skips (fails under CI) when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing under CI (scripts/python-env.sh installs it): {e}", pytrace=False)
        pytest.skip(f"{name} is not installed", allow_module_level=True)
