"""Shared fixtures for the fake NVML's Python client tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakenvml import LIB_DIR


@pytest.fixture(scope="session", autouse=True)
def fake_library() -> Path:
    lib = LIB_DIR / "libnvidia-ml.so.1"
    if not lib.is_file():
        pytest.fail(
            f"{lib} does not exist: build it first with `make fake-nvml` "
            "(or set ALGALON_FAKE_NVML_DIR)"
        )
    return lib
