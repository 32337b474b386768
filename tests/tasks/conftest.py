"""Fixtures for the task tests: the tiny checkpoints exported once per session, and pointing the shipped-checkpoint
lookup at them."""

from __future__ import annotations

from pathlib import Path

import pytest

from .tiny import save_tiny_checkpoints


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> Path:
    """A folder laid out like ``checkpoints/`` holding tiny ``report2ecg``, ``reconstruct`` and ``ppg2ecg``."""
    return save_tiny_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture
def use_tiny_checkpoints(tiny_checkpoints, monkeypatch) -> Path:
    monkeypatch.setenv("SYNTH_CHECKPOINTS", str(tiny_checkpoints))
    return tiny_checkpoints
