"""hybridrec: hybrid, metadata-aware recommender systems on JAX."""

from hybridrec.api import fit
from hybridrec.data.interactions import IdMap, Interactions, InteractionsError
from hybridrec.serving import load

__all__ = ["IdMap", "Interactions", "InteractionsError", "fit", "load"]
__version__ = "0.1.0"
