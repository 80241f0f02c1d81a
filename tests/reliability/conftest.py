"""The corpus of bad and tricky files, written once per test session (see ``make_corpus.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import make_corpus  # noqa: E402  -- the generator lives beside the tests, not in the package


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """(root directory, name -> loader thunk) for every case of ``make_corpus.CASES``."""
    root = tmp_path_factory.mktemp("corpus")
    return root, make_corpus.build(root)
