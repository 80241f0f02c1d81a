"""hybridrec: hybrid, metadata-aware recommender systems on JAX."""

from hybridrec.data.interactions import IdMap, Interactions, InteractionsError

__all__ = ["IdMap", "Interactions", "InteractionsError"]
__version__ = "0.1.0"
