"""Shared test setup: JAX's persistent compilation cache for the whole session.

Nearly all of a smoke run's time is XLA compilation, and most tests compile the same programs
(the smoke configs' chunk of steps, the evaluation kernel). With the persistent cache on, a
program seen before — earlier in this session, in an earlier session on this machine, or in a
subprocess (which inherits ``JAX_COMPILATION_CACHE_DIR``) — is loaded instead of compiled. The
cache is keyed by the program's HLO and the JAX version, so a stale entry is never used.
Its directory: ``$HYBRIDREC_TEST_JAX_CACHE``, else ``~/.cache/hybridrec/jax-tests`` (outside the
checkout, so a fresh clone on the same machine, as CI's is, starts warm).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = Path(
    os.environ.get("HYBRIDREC_TEST_JAX_CACHE", Path.home() / ".cache" / "hybridrec" / "jax-tests")
).resolve()


def pytest_configure(config):
    # Set before any test imports jax, so subprocesses and this process share one cache.
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(CACHE_DIR)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    import jax

    jax.config.update("jax_compilation_cache_dir", str(CACHE_DIR))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture(scope="session")
def compile_cache() -> Path:
    """The compilation cache directory (for subprocesses started by tests)."""
    return CACHE_DIR
