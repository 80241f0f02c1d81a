"""Variable types for recommender parameters.

Optimizer groups, weight-decay masks and logging follow these types rather than parameter
names, so renaming a field cannot move a table to the wrong optimizer, and a dense layer's bias
(an ``nnx.Param``) is never mistaken for a per-entity bias.
"""

from flax import nnx


class Embedding(nnx.Param):
    """A (num_rows, dim) lookup table indexed by entity or token IDs."""


class Bias(nnx.Param):
    """A (num_rows,) or (num_rows, 1) per-entity bias (user bias, item bias, global offset)."""


def lookup(table: Embedding, ids):
    """Rows of ``table`` for ``ids``: (..., ) int -> (..., dim).

    Every embedding lookup in hybridrec goes through this function, so that training can swap in
    row-sparse gradients (see ``hybridrec.optim``) without touching tower code.
    """
    return table[...][ids]
