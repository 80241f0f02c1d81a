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
    """Rows of ``table`` for ``ids``: (...,) int -> (..., dim).

    Every embedding lookup in hybridrec goes through this function, so that training can swap in
    row-sparse gradients without touching tower code: inside ``hybridrec.sparse.value_and_grad``
    it returns the same rows, but differentiable as rows (``stop_gradient(table)[ids] + delta``)
    rather than through the (num_rows, dim) table. Read tables only through here when training
    with ``optimizer.embeddings.sparse``.

    Args:
      table: an ``Embedding`` variable (num_rows, dim), or a plain array.
      ids: int array of any shape; negative IDs count from the end as in numpy.

    Returns:
      (*ids.shape, dim) rows.
    """
    from hybridrec.sparse import active_context  # imported here: sparse imports this module

    context = active_context()
    if context is not None:
        return context.lookup(table, ids)
    value = table.get_value() if isinstance(table, nnx.Variable) else table
    return value[ids]
