"""Row-sparse gradients and optimizers for large embedding tables.

A dense optimizer step touches every row of every table: on a 1M x 64 table with 49k rows looked
up per step, dense ``optax.adam`` spends ~167 ms per step (NOTES.md) updating rows whose gradient
is zero. This module differentiates with respect to the *gathered rows* instead, so no dense
``(num_rows, dim)`` gradient is ever materialised, and updates only the rows in the batch.

How it works. Every embedding lookup in hybridrec goes through ``hybridrec.variables.lookup``.
``value_and_grad`` traces the loss under a lookup context in which each lookup of an
``Embedding`` table returns ``stop_gradient(table)[ids] + delta``, with ``delta`` a zero array
of shape ``ids.shape + (dim,)``; the gradient with respect to ``delta`` is the gradient with
respect to the gathered rows. A first abstract trace (``jax.make_jaxpr``, no computation)
discovers the lookups and their shapes, and checks that no table is read other than through
``lookup`` (such a read would have its gradient silently dropped, so it is an error).

Three row-sparse optimizers update only the rows present in the batch:

- ``sgd``: ``table.at[ids].add(-lr * g)``; duplicate IDs add up, which is exactly dense SGD.
- ``adagrad``: per-row accumulators; duplicates are summed first (unique IDs + ``segment_sum``).
  A row that is not in the batch has a zero gradient, which leaves both its accumulator and its
  value unchanged in dense Adagrad too, so this is *exactly* ``optax.adagrad``.
- ``lazy_adam``: TensorFlow's LazyAdam (``tfa.optimizers.LazyAdam``): the moments and values of
  the rows in the batch are updated, the others are left alone (dense Adam would decay their
  moments and keep moving them). Bias correction uses the *global* step count, as LazyAdam
  does, so a row seen for the first time at step 1000 takes a small first step. The update is
  written as optax writes Adam (``eps`` outside the square root of the bias-corrected second
  moment), so on a step that touches every row it equals ``optax.adam``.

Weight decay, when configured, is applied to the rows in the batch only ("lazy" decay), in the
same form as ``hybridrec.optim``: added to the gradient (L2) for ``sgd``/``adagrad``/``adam``,
decoupled for ``adamw``.

Limitations: lookups must happen in the traced loss itself, not inside ``jax.vmap``,
``lax.scan`` or ``jax.checkpoint`` within the model (the row gradient would leave the inner
transformation); IDs are expected in ``[-num_rows, num_rows)`` (negative IDs count from the
end, as in numpy indexing).

Example (a pure jitted step over ``nnx.split`` state)::

    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt = sparse.build(config.optimizer, params, total_steps)
    opt_state = opt.init(params)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def train_step(params, opt_state, rest, batch):
        loss, grads = sparse.value_and_grad(loss_fn, graphdef, params, rest, batch)
        params, opt_state = opt.step(params, opt_state, grads)
        return params, opt_state, loss

where ``loss_fn(model, batch) -> scalar``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from hybridrec.optim import Optimizer, OptimizerConfigError, build_optimizer, make_schedule
from hybridrec.variables import Embedding

SPARSE_OPTIMIZERS = ("sgd", "adagrad", "lazy_adam")
# Dense optimizer name -> its row-sparse counterpart (for ``sparse=True``).
_SPARSE_OF = {"sgd": "sgd", "adagrad": "adagrad", "adam": "lazy_adam", "adamw": "lazy_adam"}


class SparseError(ValueError):
    """A loss or model that row-sparse gradients cannot handle, or inconsistent inputs."""


# ----------------------------------------------------------------------------------------------
# Lookup context (consulted by hybridrec.variables.lookup while tracing)

_LOCAL = threading.local()


def active_context() -> _LookupContext | None:
    """The innermost active lookup context of this thread, or None (plain lookups)."""
    stack = getattr(_LOCAL, "stack", None)
    return stack[-1] if stack else None


def table_key(path: tuple) -> str:
    """A table's key in ``Grads.rows``: its state path joined by ``/`` (``"item_tower/table"``)."""
    return "/".join(str(p) for p in path)


class _LookupSpec(NamedTuple):
    key: str
    ids_shape: tuple[int, ...]
    dim: int
    dtype: Any


class _LookupContext:
    """Trace-time state: which Variables are tables, and what each lookup returns.

    ``mode="discover"``: lookups read the table value from ``values`` (not from the Variable,
    whose value is a shadow input used to detect reads outside ``lookup``) and are recorded.
    ``mode="grad"``: lookups return ``stop_gradient(table)[ids] + deltas[k]`` for the k-th
    lookup, and must match the discovered ``specs``.
    """

    def __init__(self, tables: nnx.State, mode: str, values=None, specs=None, deltas=None):
        self.mode = mode
        self.by_variable: dict[int, str] = {}
        self.by_value: dict[int, str] = {}
        for path, var in nnx.to_flat_state(tables):
            key = table_key(path)
            self.by_variable[id(var)] = key
            self.by_value[id(var.get_value())] = key
        self.values = values
        self.specs = specs
        self.deltas = deltas
        self.records: list[tuple[str, jax.Array]] = []

    def __enter__(self):
        if not hasattr(_LOCAL, "stack"):
            _LOCAL.stack = []
        _LOCAL.stack.append(self)
        return self

    def __exit__(self, *exc):
        _LOCAL.stack.pop()

    def _key_of(self, table) -> str | None:
        key = self.by_variable.get(id(table))
        if key is None and isinstance(table, nnx.Variable):
            # nnx.merge reuses the State's Variables (flax 0.12); the value is a fallback in case a
            # future version copies them.
            key = self.by_value.get(id(table.get_value()))
        return key

    def lookup(self, table, ids) -> jax.Array:
        value = table.get_value() if isinstance(table, nnx.Variable) else table
        key = self._key_of(table)
        if key is None:
            # Not one of the differentiated tables (a constant, or an Embedding outside params):
            # a plain gather. A param table reaching here is caught by the read check.
            return value[ids]
        ids = jnp.asarray(ids)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise SparseError(f"lookup of table {key!r}: ids must be integers, got {ids.dtype}")
        k = len(self.records)
        self.records.append((key, ids))
        if self.mode == "discover":
            return self.values[key][ids]
        if k >= len(self.specs) or self.specs[k].key != key or self.specs[k].ids_shape != ids.shape:
            found = (key, tuple(ids.shape))
            expected = (self.specs[k].key, self.specs[k].ids_shape) if k < len(self.specs) else None
            raise SparseError(
                f"lookup #{k} differs between the discovery trace and the gradient trace "
                f"(got table/ids shape {found}, expected {expected}): the loss must make the "
                "same lookups every time it is traced"
            )
        return jax.lax.stop_gradient(value)[ids] + self.deltas[k]


# ----------------------------------------------------------------------------------------------
# Gradients


class RowGrad(NamedTuple):
    """The gradient of one table as rows: ``dense_grad = zeros.at[ids].add(values)``.

    Attributes:
      ids: (n,) int32 row indices, one per looked-up row (duplicates possible).
      values: (n, dim) gradient with respect to each looked-up row.
    """

    ids: jax.Array
    values: jax.Array


class Grads(NamedTuple):
    """Gradients from ``value_and_grad``.

    Attributes:
      dense: an ``nnx.State`` with the gradient of every non-``Embedding`` parameter (the
        structure of ``split_params(params)[1]``).
      rows: ``{table_key(path): RowGrad}`` for every ``Embedding`` table in ``params``; a table
        the loss did not look up has ``n = 0`` rows.
    """

    dense: nnx.State
    rows: dict[str, RowGrad]


def split_params(params: nnx.State) -> tuple[nnx.State, nnx.State]:
    """Splits params into ``(tables, others)``: the ``Embedding`` tables and everything else.

    ``nnx.merge_state(tables, others)`` gives ``params`` back.
    """
    return nnx.split_state(params, Embedding, ...)


def _merge(graphdef, tables, others, rest):
    states = (tables, others) if rest is None else (tables, others, rest)
    return nnx.merge(graphdef, *states)


def _used_inputs(closed_jaxpr) -> list[bool]:
    """Which inputs of a jaxpr are used by its outputs (after dead-code elimination)."""
    jaxpr = closed_jaxpr.jaxpr
    try:
        from jax._src.interpreters import partial_eval as pe

        return list(pe.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars))[1])
    except Exception:  # private API moved: conservative fallback (dead reads count as reads)
        used = {id(v) for eqn in jaxpr.eqns for v in eqn.invars}
        used |= {id(v) for v in jaxpr.outvars}
        return [id(v) in used for v in jaxpr.invars]


def _discover(loss_fn, graphdef, tables, others, rest, args, kwargs, has_aux, check_reads):
    """Abstract trace: the lookups the loss makes, and a check that tables are read only there."""
    flat = list(nnx.to_flat_state(tables))
    keys = [table_key(path) for path, _ in flat]
    abstract = {
        key: jax.ShapeDtypeStruct(var.get_value().shape, var.get_value().dtype)
        for key, (_, var) in zip(keys, flat)
    }
    records: list[tuple[str, tuple, Any]] = []

    def traced(shadow, values):
        shadow_tables = nnx.from_flat_state(
            [(path, var.replace(shadow[key])) for key, (path, var) in zip(keys, flat)]
        )
        with _LookupContext(shadow_tables, "discover", values=values) as ctx:
            out = loss_fn(_merge(graphdef, shadow_tables, others, rest), *args, **kwargs)
        records.extend((key, tuple(ids.shape), ids.dtype) for key, ids in ctx.records)
        return out

    closed, out_shape = jax.make_jaxpr(traced, return_shape=True)(abstract, abstract)
    loss_shape = out_shape[0] if has_aux else out_shape
    if not (
        isinstance(loss_shape, jax.ShapeDtypeStruct)
        and loss_shape.shape == ()
        and jnp.issubdtype(loss_shape.dtype, jnp.floating)
    ):
        where = " as the first of (loss, aux)" if has_aux else ""
        raise SparseError(f"the loss must return a float scalar{where}, got {loss_shape}")
    if check_reads:
        used = jax.tree.unflatten(jax.tree.structure((abstract, abstract)), _used_inputs(closed))[0]
        direct = sorted(key for key, flag in used.items() if flag)
        if direct:
            raise SparseError(
                f"Embedding table(s) {direct} are read other than through "
                "hybridrec.variables.lookup (e.g. `table[...]`): row-sparse gradients would miss "
                "those reads. Route every read through lookup(table, ids), passing the Embedding "
                "variable itself (not table[...]), or train these tables with a dense optimizer "
                "(optimizer.embeddings.sparse unset)."
            )
    dims = {key: abstract[key].shape[-1] for key in keys}
    dtypes = {key: abstract[key].dtype for key in keys}
    return [_LookupSpec(key, shape, dims[key], dtypes[key]) for key, shape, _ in records], keys


def value_and_grad(
    loss_fn: Callable[..., Any],
    graphdef: nnx.GraphDef,
    params: nnx.State,
    rest: nnx.State | None,
    *args: Any,
    has_aux: bool = False,
    check_reads: bool = True,
    **kwargs: Any,
) -> tuple[Any, Grads]:
    """Loss and gradients, with ``Embedding`` gradients as rows (never a dense table gradient).

    Works eagerly and inside ``jax.jit`` (the two extra traces happen at trace time only).

    Args:
      loss_fn: ``loss_fn(model, *args, **kwargs) -> loss`` (a float scalar), or ``(loss, aux)``
        with ``has_aux``. Every read of an ``Embedding`` must go through
        ``hybridrec.variables.lookup``.
      graphdef: the model's graph definition from ``nnx.split``.
      params: the ``nnx.Param`` state (``nnx.split(model, nnx.Param, ...)[1]``).
      rest: the remaining state (third output of that split), or None.
      *args: passed to ``loss_fn``.
      has_aux: whether ``loss_fn`` returns ``(loss, aux)``.
      check_reads: raise ``SparseError`` when a table is read outside ``lookup`` (whose gradient
        would be lost). Costs nothing at run time.
      **kwargs: passed to ``loss_fn``.

    Returns:
      ``(loss, grads)`` or ``((loss, aux), grads)`` with ``has_aux``; ``grads`` is a ``Grads``:
      dense gradients for the non-``Embedding`` params and ``RowGrad(ids (n,), values (n, D))``
      per table, ``n`` = the total number of looked-up rows of that table.
    """
    tables, others = split_params(params)
    specs, keys = _discover(
        loss_fn, graphdef, tables, others, rest, args, kwargs, has_aux, check_reads
    )
    deltas = [jnp.zeros((*s.ids_shape, s.dim), s.dtype) for s in specs]

    def inner(others, deltas):
        with _LookupContext(tables, "grad", specs=specs, deltas=deltas) as ctx:
            out = loss_fn(_merge(graphdef, tables, others, rest), *args, **kwargs)
        if len(ctx.records) != len(specs):
            raise SparseError(
                f"the loss made {len(ctx.records)} lookups in the gradient trace but "
                f"{len(specs)} in the discovery trace: it must be deterministic"
            )
        loss, aux = out if has_aux else (out, None)
        # The IDs leave as auxiliary outputs: they may be computed inside the loss.
        return loss, (aux, [ids for _, ids in ctx.records])

    (loss, (aux, ids_list)), (dense, delta_grads) = jax.value_and_grad(
        inner, argnums=(0, 1), has_aux=True
    )(others, deltas)
    values = {table_key(path): var.get_value() for path, var in nnx.to_flat_state(tables)}
    rows = {}
    for key in keys:
        dim, dtype = values[key].shape[-1], values[key].dtype
        parts = [(ids, g) for s, ids, g in zip(specs, ids_list, delta_grads) if s.key == key]
        if parts:
            ids = jnp.concatenate([jnp.reshape(i, -1).astype(jnp.int32) for i, _ in parts])
            grads = jnp.concatenate([jnp.reshape(g, (-1, dim)) for _, g in parts])
        else:
            ids, grads = jnp.zeros((0,), jnp.int32), jnp.zeros((0, dim), dtype)
        rows[key] = RowGrad(ids, grads)
    value = (loss, aux) if has_aux else loss
    return value, Grads(dense, rows)


def densify(grads: Grads, params: nnx.State) -> nnx.State:
    """The dense gradient pytree (structure of ``params``) that ``grads`` stands for.

    For tests and debugging: it builds the (num_rows, dim) arrays that training avoids.
    """
    tables, _ = split_params(params)
    dense_tables = nnx.from_flat_state(
        [
            (
                path,
                var.replace(
                    jnp.zeros_like(var.get_value())
                    .at[grads.rows[table_key(path)].ids]
                    .add(grads.rows[table_key(path)].values)
                ),
            )
            for path, var in nnx.to_flat_state(tables)
        ]
    )
    return nnx.merge_state(dense_tables, grads.dense)


# ----------------------------------------------------------------------------------------------
# Row-sparse optimizers


def unique_rows(ids: jax.Array, row_grads: jax.Array, num_rows: int) -> tuple[jax.Array, jax.Array]:
    """Sums the gradients of duplicate IDs, with static shapes.

    Args:
      ids: (n,) int row indices in ``[0, num_rows)``.
      row_grads: (n, D) gradients.
      num_rows: rows of the table.

    Returns:
      ``(unique_ids, summed)``: (n,) int32 and (n, D). Each distinct ID appears once, at the
      position of its first occurrence in ``ids``, with the sum of its gradients; every other
      slot holds the distinct out-of-range ID ``num_rows + position`` and a zero gradient, so all
      entries are unique, and gathers with ``mode="clip"`` and scatters with ``mode="drop"``
      ignore the filler slots.
    """
    n = ids.shape[0]
    if n == 0:
        return ids.astype(jnp.int32), row_grads
    ids = ids.astype(jnp.int32)
    position = jnp.arange(n, dtype=jnp.int32)
    # First position of every ID through a scatter-min into a (num_rows,) int32 scratch array
    # (1/D of the table's size): on CPU this took 2-3 ms for 49k IDs, sorting them 11-17 ms.
    first = jnp.full((num_rows,), n, jnp.int32).at[ids].min(position, mode="drop")
    owner = first.at[ids].get(mode="clip")  # (n,) position that holds each entry's ID
    unique_ids = jnp.where(owner == position, ids, num_rows + position)
    summed = jax.ops.segment_sum(row_grads, owner, num_segments=n)
    return unique_ids, summed


def _normalise_ids(ids: jax.Array, num_rows: int) -> jax.Array:
    ids = ids.astype(jnp.int32)
    return jnp.where(ids < 0, ids + num_rows, ids)  # numpy-style negative indices, as in lookup


_SCATTER = dict(mode="drop", unique_indices=True)


def _rows(array: jax.Array, unique_ids: jax.Array) -> jax.Array:
    # The out-of-range fill slots read a clamped row; their result is dropped by the scatter.
    return array.at[unique_ids].get(mode="clip")


class RowOptimizer:
    """An optimizer that updates only the rows of a table present in the batch.

    ``init(table) -> state``; ``update(table, state, ids, row_grads, lr) -> (table, state)``
    with ``table`` (num_rows, D), ``ids`` (n,) int, ``row_grads`` (n, D), ``lr`` a scalar. Both
    are pure and jit-friendly (static shapes). Subclasses implement ``update_unique``, which
    takes the output of ``unique_rows``; ``sums_duplicates`` says whether ``update`` must call
    ``unique_rows`` first.
    """

    name = "row_optimizer"
    sums_duplicates = True

    def init(self, table: jax.Array) -> Any:
        """Optimizer state for one (num_rows, D) table."""
        raise NotImplementedError

    def update_unique(self, table, state, unique_ids, grads, lr):
        """The update from deduplicated rows (see ``unique_rows``)."""
        raise NotImplementedError

    def update_duplicates(self, table, state, ids, row_grads, lr):
        """The update from raw rows with possible duplicates (only when not ``sums_duplicates``)."""
        raise NotImplementedError

    def skip(self, state: Any) -> Any:
        """The state after a step in which the table was not looked up."""
        return state

    def update(
        self, table: jax.Array, state: Any, ids: jax.Array, row_grads: jax.Array, lr: jax.Array
    ) -> tuple[jax.Array, Any]:
        """One step on the rows in ``ids``.

        Args:
          table: (num_rows, D).
          state: from ``init`` or a previous ``update``.
          ids: (n,) int row indices (duplicates allowed; negative count from the end).
          row_grads: (n, D) gradient of each looked-up row.
          lr: scalar learning rate.

        Returns:
          ``(table, state)`` after the step; rows not in ``ids`` and their state are unchanged.
        """
        if ids.shape[0] == 0:
            return table, self.skip(state)
        ids = _normalise_ids(ids, table.shape[0])
        row_grads = row_grads.astype(table.dtype)
        if self.sums_duplicates:
            unique_ids, grads = unique_rows(ids, row_grads, table.shape[0])
            return self.update_unique(table, state, unique_ids, grads, lr)
        return self.update_duplicates(table, state, ids, row_grads, lr)


@dataclasses.dataclass(frozen=True)
class SGD(RowOptimizer):
    """Row-sparse SGD: ``table[ids] -= lr * (g + weight_decay * table[ids])``.

    Without weight decay, duplicates are simply scattered with ``add`` (no deduplication), which
    is exactly dense SGD. With it, IDs are deduplicated so each row decays once.
    """

    weight_decay: float = 0.0
    name = "sgd"

    @property
    def sums_duplicates(self) -> bool:  # type: ignore[override]
        return self.weight_decay != 0.0

    def init(self, table):
        return ()

    def update_duplicates(self, table, state, ids, row_grads, lr):
        return table.at[ids].add((-lr * row_grads).astype(table.dtype), mode="drop"), state

    def update_unique(self, table, state, unique_ids, grads, lr):
        if self.weight_decay:
            grads = grads + self.weight_decay * _rows(table, unique_ids)
        return table.at[unique_ids].add((-lr * grads).astype(table.dtype), **_SCATTER), state


@dataclasses.dataclass(frozen=True)
class Adagrad(RowOptimizer):
    """Row-sparse Adagrad, equal to ``optax.adagrad`` (same defaults and formula).

    ``acc[r] += g_r^2``; ``table[r] -= lr * g_r / sqrt(acc[r] + eps)`` for the rows ``r`` in the
    batch (``g_r`` summed over duplicates). Untouched rows have zero gradient, which changes
    nothing in dense Adagrad either.
    """

    initial_accumulator_value: float = 0.1
    eps: float = 1e-7
    weight_decay: float = 0.0
    name = "adagrad"

    def init(self, table):
        return jnp.full_like(table, self.initial_accumulator_value)

    def update_unique(self, table, state, unique_ids, grads, lr):
        if self.weight_decay:
            grads = grads + self.weight_decay * _rows(table, unique_ids)
        acc = _rows(state, unique_ids) + grads * grads
        step = jnp.where(acc > 0, jax.lax.rsqrt(acc + self.eps), 0.0) * grads
        state = state.at[unique_ids].set(acc, **_SCATTER)
        return table.at[unique_ids].add((-lr * step).astype(table.dtype), **_SCATTER), state


class LazyAdamState(NamedTuple):
    """``count``: global step count (int32 scalar); ``mu``, ``nu``: (num_rows, D) moments."""

    count: jax.Array
    mu: jax.Array
    nu: jax.Array


@dataclasses.dataclass(frozen=True)
class LazyAdam(RowOptimizer):
    """Lazy Adam (TensorFlow Addons' LazyAdam): moments and values of batch rows only.

    With ``t`` the global step (1 on the first update, counted for every step, whether or not
    the row is in the batch), for each row ``r`` in the batch (``g_r`` summed over duplicates)::

        mu[r] = b1 * mu[r] + (1 - b1) * g_r
        nu[r] = b2 * nu[r] + (1 - b2) * g_r^2
        table[r] -= lr * (mu[r] / (1 - b1^t)) / (sqrt(nu[r] / (1 - b2^t)) + eps)

    Rows not in the batch keep their value and moments. ``weight_decay`` adds
    ``weight_decay * table[r]`` to ``g_r`` (L2, as ``optim``'s ``adam``) or, with ``decoupled``,
    to the step (as ``optax.adamw``).
    """

    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled: bool = False
    name = "lazy_adam"

    def init(self, table):
        # Two separate buffers: the trainer donates the state, and a buffer cannot be donated twice.
        return LazyAdamState(jnp.zeros((), jnp.int32), jnp.zeros_like(table), jnp.zeros_like(table))

    def skip(self, state):
        return state._replace(count=state.count + 1)

    def update_unique(self, table, state, unique_ids, grads, lr):
        count = state.count + 1
        rows = _rows(table, unique_ids) if self.weight_decay else None
        if self.weight_decay and not self.decoupled:
            grads = grads + self.weight_decay * rows
        mu = self.b1 * _rows(state.mu, unique_ids) + (1 - self.b1) * grads
        nu = self.b2 * _rows(state.nu, unique_ids) + (1 - self.b2) * grads * grads
        t = count.astype(table.dtype)
        mu_hat = mu / (1 - self.b1**t)
        nu_hat = nu / (1 - self.b2**t)
        step = mu_hat / (jnp.sqrt(nu_hat) + self.eps)
        if self.weight_decay and self.decoupled:
            step = step + self.weight_decay * rows
        table = table.at[unique_ids].add((-lr * step).astype(table.dtype), **_SCATTER)
        state = LazyAdamState(
            count,
            state.mu.at[unique_ids].set(mu, **_SCATTER),
            state.nu.at[unique_ids].set(nu, **_SCATTER),
        )
        return table, state


def sgd(weight_decay: float = 0.0) -> SGD:
    """Row-sparse SGD (see ``SGD``)."""
    return SGD(weight_decay=weight_decay)


def adagrad(
    initial_accumulator_value: float = 0.1, eps: float = 1e-7, weight_decay: float = 0.0
) -> Adagrad:
    """Row-sparse Adagrad (see ``Adagrad``)."""
    return Adagrad(initial_accumulator_value, eps, weight_decay)


def lazy_adam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled: bool = False,
) -> LazyAdam:
    """Lazy Adam (see ``LazyAdam``)."""
    return LazyAdam(b1, b2, eps, weight_decay, decoupled)


# ----------------------------------------------------------------------------------------------
# Trainer integration


class SparseOptState(NamedTuple):
    """State of a ``SparseOptimizer``.

    Attributes:
      count: steps taken (int32 scalar; drives the embeddings' schedule).
      lr_scale: plateau scale of every learning rate (float32 scalar).
      tables: ``{table_key: row-optimizer state}``.
      dense: the state of the grouped optax optimizer for the other params (None if none).
    """

    count: jax.Array
    lr_scale: jax.Array
    tables: dict[str, Any]
    dense: Any


def enabled(config: Mapping[str, Any]) -> bool:
    """Whether the ``optimizer`` config section asks for row-sparse embedding updates."""
    spec = config.get("embeddings") or {}
    return bool(spec.get("sparse"))


def dense_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``optimizer`` section without the ``embeddings.sparse`` key (for ``build_optimizer``)."""
    config = dict(config)
    if config.get("embeddings") is not None:
        spec = dict(config["embeddings"])
        spec.pop("sparse", None)
        config["embeddings"] = spec
    return config


def row_optimizer_from_config(spec: Mapping[str, Any]) -> RowOptimizer:
    """The row-sparse optimizer of an ``optimizer.embeddings`` section.

    ``sparse`` is ``"sgd"``, ``"adagrad"``, ``"lazy_adam"`` or True (the counterpart of ``name``:
    sgd -> sgd, adagrad -> adagrad, adam/adamw -> lazy_adam). Other keys: ``name``,
    ``learning_rate``, ``schedule``, ``weight_decay`` and the algorithm's options (adagrad:
    ``initial_accumulator_value``, ``eps``; lazy_adam: ``b1``, ``b2``, ``eps``).
    """
    spec = dict(spec)
    choice = spec.pop("sparse")
    name = spec.pop("name", None)
    for key in ("learning_rate", "schedule"):
        spec.pop(key, None)
    if choice is True:
        if (name or "adam") not in _SPARSE_OF:
            raise OptimizerConfigError(
                f"optimizer.embeddings: no row-sparse version of {name!r}; use name sgd, adagrad, "
                "adam or adamw, or set sparse to one of " + ", ".join(SPARSE_OPTIMIZERS)
            )
        choice = _SPARSE_OF[name or "adam"]
    if choice not in SPARSE_OPTIMIZERS:
        raise OptimizerConfigError(
            f"optimizer.embeddings.sparse={choice!r}; choose one of {', '.join(SPARSE_OPTIMIZERS)} "
            "or True"
        )
    if name is not None and _SPARSE_OF.get(name) != choice:
        raise OptimizerConfigError(
            f"optimizer.embeddings: name={name!r} contradicts sparse={choice!r} (the row-sparse "
            f"counterpart of {name!r} is {_SPARSE_OF.get(name)!r})"
        )
    if choice == "lazy_adam":
        spec["decoupled"] = name == "adamw"
    factory = {"sgd": sgd, "adagrad": adagrad, "lazy_adam": lazy_adam}[choice]
    try:
        return factory(**{k: float(v) if k != "decoupled" else v for k, v in spec.items()})
    except ValueError as err:
        raise OptimizerConfigError(f"optimizer.embeddings: bad value: {err}") from None
    except TypeError:
        allowed = {
            "sgd": ["weight_decay"],
            "adagrad": ["initial_accumulator_value", "eps", "weight_decay"],
            "lazy_adam": ["b1", "b2", "eps", "weight_decay"],
        }[choice]
        unknown = sorted(set(spec) - set(allowed) - {"decoupled"})
        raise OptimizerConfigError(
            f"optimizer.embeddings: option(s) {unknown} not supported by row-sparse {choice}; "
            f"it accepts {allowed} plus name, learning_rate, schedule, sparse"
        ) from None


@dataclasses.dataclass
class SparseOptimizer:
    """Row-sparse updates for ``Embedding`` tables plus ``hybridrec.optim``'s grouped optimizer
    for everything else.

    Attributes:
      rows: the row optimizer used for every table.
      schedule: the embeddings' learning-rate schedule (step -> lr).
      dense: the lead's ``Optimizer`` built on the non-``Embedding`` params (None if there are
        none); its ``clip_norm`` is removed because clipping is done here, over all gradients.
      clip_norm: global-norm clipping over dense and (deduplicated) row gradients, or None.
      table_keys: keys of the tables, as in ``Grads.rows``.
    """

    rows: RowOptimizer
    schedule: Callable[[jax.Array], jax.Array]
    dense: Optimizer | None
    clip_norm: float | None
    table_keys: tuple[str, ...]

    def init(self, params: nnx.State) -> SparseOptState:
        """Initial state for ``params`` (the ``nnx.Param`` state)."""
        tables, others = split_params(params)
        return SparseOptState(
            count=jnp.zeros((), jnp.int32),
            lr_scale=jnp.ones((), jnp.float32),
            tables={
                table_key(path): self.rows.init(var.get_value())
                for path, var in nnx.to_flat_state(tables)
            },
            dense=None if self.dense is None else self.dense.tx.init(others),
        )

    def step(
        self, params: nnx.State, opt_state: SparseOptState, grads: Grads
    ) -> tuple[nnx.State, SparseOptState]:
        """One optimizer step.

        Args:
          params: the ``nnx.Param`` state.
          opt_state: from ``init`` or a previous ``step``.
          grads: from ``value_and_grad`` on the same params.

        Returns:
          ``(params, opt_state)`` after the step.
        """
        tables, others = split_params(params)
        missing = set(self.table_keys) - set(grads.rows)
        if missing:
            raise KeyError(f"no row gradients for table(s) {sorted(missing)}")
        lr = self.schedule(opt_state.count) * opt_state.lr_scale
        dense_grads = grads.dense
        rows = dict(grads.rows)
        deduped = None
        if self.clip_norm:
            # Clip by the norm of the dense-equivalent gradient: duplicates must be summed first.
            deduped = {}
            for path, var in nnx.to_flat_state(tables):
                key = table_key(path)
                ids = _normalise_ids(rows[key].ids, var.get_value().shape[0])
                deduped[key] = unique_rows(ids, rows[key].values, var.get_value().shape[0])
            squares = [jnp.sum(jnp.square(g)) for g in jax.tree.leaves(dense_grads)]
            squares += [jnp.sum(jnp.square(g)) for _, g in deduped.values()]
            norm = jnp.sqrt(sum(squares)) if squares else jnp.zeros(())
            scale = jnp.where(norm < self.clip_norm, 1.0, self.clip_norm / norm)
            dense_grads = jax.tree.map(lambda g: g * scale.astype(g.dtype), dense_grads)
            deduped = {k: (u, g * scale.astype(g.dtype)) for k, (u, g) in deduped.items()}
        new_tables, new_states = [], {}
        for path, var in nnx.to_flat_state(tables):
            key = table_key(path)
            table, state = var.get_value(), opt_state.tables[key]
            if deduped is not None and rows[key].ids.shape[0] > 0:
                table, state = self.rows.update_unique(table, state, *deduped[key], lr)
            else:
                table, state = self.rows.update(table, state, rows[key].ids, rows[key].values, lr)
            new_tables.append((path, var.replace(table)))
            new_states[key] = state
        dense_state = opt_state.dense
        if self.dense is not None:
            updates, dense_state = self.dense.tx.update(dense_grads, dense_state, others)
            others = optax.apply_updates(others, updates)
        params = nnx.merge_state(nnx.from_flat_state(new_tables), others)
        return params, SparseOptState(
            opt_state.count + 1, opt_state.lr_scale, new_states, dense_state
        )

    def lr_scale(self, opt_state: SparseOptState) -> jax.Array:
        """The current plateau scale of every learning rate."""
        return opt_state.lr_scale

    def set_lr_scale(self, opt_state: SparseOptState, scale: float) -> SparseOptState:
        """A copy of ``opt_state`` with the plateau scale set to ``scale`` (no recompilation)."""
        dense = opt_state.dense
        if self.dense is not None:
            dense = Optimizer.set_lr_scale(dense, scale)
        return opt_state._replace(lr_scale=jnp.asarray(scale, jnp.float32), dense=dense)


def build(config: Mapping[str, Any], params: nnx.State, total_steps: int) -> SparseOptimizer:
    """Builds row-sparse embedding updates plus the grouped dense optimizer.

    Args:
      config: the ``optimizer`` section, as for ``hybridrec.optim.build_optimizer``, with
        ``embeddings.sparse`` set (see ``row_optimizer_from_config``). The embeddings' schedule
        is ``embeddings.schedule`` or the shared ``schedule``; ``clip_norm`` clips the global
        norm of all gradients (row gradients deduplicated); the plateau ``lr_scale`` scales
        every group (``SparseOptimizer.set_lr_scale``).
      params: the ``nnx.Param`` state.
      total_steps: optimizer steps in the run (for schedules).

    Returns:
      A ``SparseOptimizer``.
    """
    config = dict(config)
    if not enabled(config):
        raise OptimizerConfigError(
            "sparse.build needs optimizer.embeddings.sparse set (sgd, adagrad, lazy_adam or True)"
        )
    spec = dict(config["embeddings"])
    if "learning_rate" not in spec:
        raise OptimizerConfigError("optimizer.embeddings needs a learning_rate")
    rows = row_optimizer_from_config(spec)
    schedule = make_schedule(
        float(spec["learning_rate"]), spec.get("schedule", config.get("schedule")), total_steps
    )
    tables, others = split_params(params)
    dense_cfg = dense_config(config)
    dense_cfg.pop("embeddings")
    clip_norm = dense_cfg.pop("clip_norm", None)
    dense = build_optimizer(dense_cfg, others, total_steps) if jax.tree.leaves(others) else None
    return SparseOptimizer(
        rows=rows,
        schedule=schedule,
        dense=dense,
        clip_norm=float(clip_norm) if clip_norm else None,
        table_keys=tuple(table_key(path) for path, _ in nnx.to_flat_state(tables)),
    )
