"""hybridrec: hybrid, metadata-aware recommender systems on JAX.

``hybridrec.fit`` (train from DataFrames) and ``hybridrec.load`` (a trained run) are imported on
first use: ``import hybridrec`` itself stays cheap (no JAX, Flax or scikit-learn until needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hybridrec.data.interactions import IdMap, Interactions, InteractionsError

if TYPE_CHECKING:  # for type checkers and readers; at run time see __getattr__
    from hybridrec.api import fit
    from hybridrec.serving import load

__all__ = ["IdMap", "Interactions", "InteractionsError", "fit", "load"]
__version__ = "0.1.0"

_LAZY = {"fit": "hybridrec.api", "load": "hybridrec.serving"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hybridrec' has no attribute {name!r}")
