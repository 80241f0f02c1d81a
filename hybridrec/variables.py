"""Variable types for recommender parameters, and the one function that reads embedding tables.

Optimizer groups, weight-decay masks and logging follow these types rather than parameter
names, so renaming a field cannot move a table to the wrong optimizer, and a dense layer's bias
(an ``nnx.Param``) is never mistaken for a per-entity bias.

Every embedding lookup goes through ``lookup``. Row-sparse training (``hybridrec.sparse``) merges
the model with a ``RowView`` in place of each ``Embedding`` table's value; ``lookup`` recognises a
view and asks it for the rows, so that the gradient flows to the gathered rows rather than to the
(num_rows, dim) table. ``no_grad`` gives a model that reads the same values without
gradients (and without recording row lookups). This module imports nothing from the rest of
hybridrec.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx


class Embedding(nnx.Param):
    """A (num_rows, dim) lookup table indexed by entity or token IDs."""


class Bias(nnx.Param):
    """A (num_rows,) or (num_rows, 1) per-entity bias (user bias, item bias, global offset)."""


class RowViewError(ValueError):
    """A table standing behind a ``RowView`` was read other than through ``lookup``."""


class RowView:
    """Stands in for an ``Embedding`` table's value while a loss is traced for row gradients.

    ``hybridrec.sparse.value_and_grad`` builds one view per table and merges the model with
    ``Embedding(view)`` in place of ``Embedding(table)``. Only ``lookup`` reads through a view:
    indexing it, doing arithmetic on it or converting it to an array raises ``RowViewError``,
    because the gradient of such a read would be lost. ``shape``, ``dtype``, ``ndim`` and ``len``
    describe the table as usual.

    A view lives inside one trace and records, in order, the IDs of every lookup made through it
    (``ids``). Without ``deltas`` (the discovery trace) a lookup returns ``table[ids]``; with
    ``deltas`` (one zero array of shape ``ids.shape + (dim,)`` per lookup, the differentiated
    inputs) the k-th lookup returns ``stop_gradient(table)[ids] + deltas[k]``, so the gradient
    with respect to ``deltas[k]`` is the gradient with respect to the rows it gathered.

    Args:
      name: the table's name, for error messages.
      table: (num_rows, dim) values.
      deltas: None, or one (..., dim) array per lookup the loss will make, in order.
    """

    __slots__ = ("name", "_table", "_deltas", "ids")

    def __init__(self, name: str, table: jax.Array, deltas: list[jax.Array] | None = None):
        self.name = name
        self._table = table
        self._deltas = deltas
        self.ids: list[jax.Array] = []

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._table.shape)

    @property
    def dtype(self) -> Any:
        return self._table.dtype

    @property
    def ndim(self) -> int:
        return len(self._table.shape)

    def __len__(self) -> int:
        return self._table.shape[0]

    def gather(self, ids: Any) -> jax.Array:
        """Rows for ``ids`` ((...,) int -> (..., dim)), recording the IDs."""
        ids = jnp.asarray(ids)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise RowViewError(
                f"lookup of table {self.name!r}: ids must be integers, got {ids.dtype}"
            )
        k = len(self.ids)
        self.ids.append(ids)
        if self._deltas is None:
            return self._table[ids]
        row = tuple(self._table.shape[1:])  # (D,), or () for a (num_rows,) bias
        if k >= len(self._deltas) or tuple(self._deltas[k].shape) != (*ids.shape, *row):
            expected = (
                tuple(self._deltas[k].shape)[: self._deltas[k].ndim - len(row)]
                if k < len(self._deltas)
                else None
            )
            raise RowViewError(
                f"lookup #{k} of table {self.name!r} has ids of shape {tuple(ids.shape)}; the "
                f"discovery trace saw {expected}: the loss must make the same lookups every time "
                "it is traced"
            )
        return jax.lax.stop_gradient(self._table)[ids] + self._deltas[k]

    def _refuse(self, *args: Any, **kwargs: Any):
        raise RowViewError(
            f"Table(s) {[self.name]} are read other than through "
            "hybridrec.variables.lookup (e.g. `table[...]`): row-sparse gradients would miss "
            "those reads. Route every read through lookup(table, ids), passing the Embedding or "
            "Bias variable itself (not table[...]), or train these tables with a dense optimizer "
            "(optimizer.embeddings.sparse=False; for Bias tables optimizer.biases.sparse=False)."
        )

    __getitem__ = __array__ = __jax_array__ = __iter__ = _refuse
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _refuse
    __truediv__ = __rtruediv__ = __matmul__ = __rmatmul__ = __pow__ = __neg__ = _refuse

    def __repr__(self) -> str:
        return f"RowView({self.name!r}, shape={self.shape}, lookups={len(self.ids)})"


def lookup(table: Embedding | jax.Array, ids: Any) -> jax.Array:
    """Rows of ``table`` for ``ids``: (...,) int -> (..., dim).

    Every embedding lookup in hybridrec goes through this function, so that training can swap in
    row-sparse gradients without touching tower code: when the table's value is a ``RowView``
    (inside ``hybridrec.sparse.value_and_grad``) the view returns the same rows, differentiable
    as rows rather than through the (num_rows, dim) table. Read tables only through here when
    training with ``optimizer.embeddings.sparse``.

    Args:
      table: an ``Embedding`` variable (num_rows, dim), a ``Bias`` variable (num_rows,), or a
        plain array.
      ids: int array of any shape; negative IDs count from the end as in numpy.

    Returns:
      (*ids.shape, dim) rows ((*ids.shape,) values of a (num_rows,) table).
    """
    value = table.get_value() if isinstance(table, nnx.Variable) else table
    if isinstance(value, RowView):
        return value.gather(ids)
    return value[ids]


def no_grad(model: nnx.Module) -> nnx.Module:
    """The same model with every value behind ``jax.lax.stop_gradient``, for scores that steer
    training without being trained on (e.g. which sampled negative is the hardest).

    Lookups through the copy's tables are not recorded by a ``RowView``: under row-sparse
    training they add no rows to the step's gradient (no (B * K, D) scatter of zeros for
    negatives that only competed). Call it inside the loss; the model itself is not changed.

    Args:
      model: a hybridrec model, possibly holding ``RowView`` tables (inside
        ``hybridrec.sparse.value_and_grad``).

    Returns:
      A model of the same graph whose parameters are constants of the trace.
    """
    graphdef, state = nnx.split(model)

    def freeze(var):
        value = var.get_value()
        if isinstance(value, RowView):
            value = value._table  # the table itself, read as a constant below
        if isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jnp.inexact):
            value = jax.lax.stop_gradient(value)
        return var.replace(value)

    frozen = nnx.from_flat_state([(path, freeze(var)) for path, var in nnx.to_flat_state(state)])
    return nnx.merge(graphdef, frozen)
