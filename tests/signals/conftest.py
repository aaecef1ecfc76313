"""Fixtures of the signal tests; the helpers live in sigtools.py."""

from __future__ import annotations

import pytest
from sigtools import make_dtmf, make_final, make_partial


@pytest.fixture
def final():
    return make_final


@pytest.fixture
def partial():
    return make_partial


@pytest.fixture
def dtmf():
    return make_dtmf
