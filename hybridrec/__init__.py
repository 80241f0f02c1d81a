"""hybridrec: hybrid, metadata-aware recommender systems on JAX."""

from hybridrec.data.interactions import IdMap, Interactions, InteractionsError
from hybridrec.serving import load

__all__ = ["IdMap", "Interactions", "InteractionsError", "load"]
__version__ = "0.1.0"
