"""Optimizers with parameter groups that follow variable types, schedules, and plateau decay.

Groups (STYLE.md §5): ``embeddings`` (``hybridrec.variables.Embedding`` tables), ``biases``
(``hybridrec.variables.Bias``) and ``dense`` (every other ``nnx.Param``: Linear kernels and their
biases). Each group gets its own optax optimizer, learning rate, schedule and weight decay from the
config, combined with ``optax.partition``. The labels are computed once from the model's typed
state (a label callable would see plain arrays inside ``update``; NOTES.md), so a renamed field
cannot move a table to the wrong optimizer.

Defaults follow Collie: Adam for embeddings, SGD for biases. Weight decay is per group and zero for
biases unless the config asks for it. Reduce-on-plateau is driven from the host by a validation
metric: the whole update is scaled by an injected ``lr_scale`` hyperparameter that lives in the
optimizer state, so changing it never recompiles the step.

One interface for dense and row-sparse optimizers (``GradientOptimizer``). ``build`` reads the
``optimizer`` config section and returns either the grouped optax optimizer (``Optimizer``) or,
with ``embeddings.sparse=True``, ``RowSparseOptimizer``: row-sparse updates of the
``Embedding`` tables (``hybridrec.sparse``: gradients with respect to the gathered rows only) plus
the same grouped optax optimizer for every other parameter. The trainer drives both the same way::

    opt = optim.build(config.optimizer, params, total_steps)
    state = opt.init(params)                     # a pytree of arrays: orbax saves it as is
    loss, grads = opt.value_and_grad(loss_fn, graphdef, params, rest, *args)
    params, state = opt.apply(params, state, grads)
    opt.lr_scale(state); state = opt.set_lr_scale(state, scale)

``loss_fn(model, *args) -> scalar``; ``grads`` is opaque to the caller (a dense ``nnx.State`` or
``hybridrec.sparse.Grads``). Serving needs no optimizer: checkpoints keep params apart.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from hybridrec import sparse
from hybridrec.variables import Bias, Embedding

GROUPS = ("embeddings", "biases", "dense")
OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad", "rmsprop", "lamb", "lion")
SCHEDULES = ("constant", "cosine", "cosine_restarts", "onecycle", "warmup_cosine")


class OptimizerConfigError(ValueError):
    """A bad optimizer or schedule setting in the config."""


def group_of(variable: nnx.Variable) -> str:
    """The optimizer group of a variable: by type, never by name."""
    if isinstance(variable, Embedding):
        return "embeddings"
    if isinstance(variable, Bias):
        return "biases"
    return "dense"


def param_labels(params: nnx.State) -> Any:
    """A pytree of group names, one per variable of ``params`` (an ``nnx.State`` of Params)."""
    return jax.tree.map(group_of, params, is_leaf=lambda x: isinstance(x, nnx.Variable))


def make_schedule(learning_rate: float, schedule: Mapping[str, Any] | None, total_steps: int):
    """A learning-rate schedule (step -> lr).

    Names: ``constant``; ``cosine`` (decay to ``alpha * lr`` over the run); ``cosine_restarts``
    (SGDR, Loshchilov & Hutter 2017: ``num_cycles`` equal cosine cycles, each restarting at the
    peak); ``onecycle`` (Smith 2018: warm up to ``lr`` for ``pct_start`` of the run, then anneal);
    ``warmup_cosine`` (linear warm-up for ``warmup_steps``, then cosine).
    """
    schedule = dict(schedule or {})
    name = schedule.pop("name", "constant")
    total_steps = max(int(total_steps), 1)
    if name == "constant":
        return optax.constant_schedule(learning_rate)
    if name == "cosine":
        return optax.cosine_decay_schedule(
            learning_rate, total_steps, alpha=schedule.get("alpha", 0.0)
        )
    if name == "cosine_restarts":
        cycles = int(schedule.get("num_cycles", 4))
        period = max(total_steps // cycles, 1)
        return optax.sgdr_schedule(
            [
                dict(
                    init_value=learning_rate,
                    peak_value=learning_rate,
                    warmup_steps=0,
                    decay_steps=period,
                    end_value=learning_rate * schedule.get("alpha", 0.0),
                )
                for _ in range(cycles)
            ]
        )
    if name == "onecycle":
        return optax.cosine_onecycle_schedule(
            total_steps,
            learning_rate,
            pct_start=schedule.get("pct_start", 0.25),
            div_factor=schedule.get("div_factor", 25.0),
            final_div_factor=schedule.get("final_div_factor", 1e4),
        )
    if name == "warmup_cosine":
        warmup = int(schedule.get("warmup_steps", max(total_steps // 20, 1)))
        return optax.warmup_cosine_decay_schedule(
            0.0,
            learning_rate,
            warmup,
            total_steps,
            end_value=learning_rate * schedule.get("alpha", 0.0),
        )
    raise OptimizerConfigError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")


def make_group_optimizer(
    group: str, spec: Mapping[str, Any], schedule: Mapping[str, Any] | None, total_steps: int
) -> optax.GradientTransformation:
    """One group's optimizer from ``{"name": "adam", "learning_rate": 1e-2, ...}``."""
    spec = dict(spec)
    name = spec.pop("name", "adam")
    if "learning_rate" not in spec:
        raise OptimizerConfigError(f"optimizer.{group} needs a learning_rate")
    lr = make_schedule(
        float(spec.pop("learning_rate")), spec.pop("schedule", schedule), total_steps
    )
    weight_decay = float(spec.pop("weight_decay", 0.0))
    spec.pop("sparse_above_rows", None)  # read by build(), which chose this dense optimizer
    spec.pop("large_tables", None)
    if spec.pop("sparse", False):
        raise OptimizerConfigError(
            f"optimizer.{group}.sparse is set: build with hybridrec.optim.build, not build_optimizer"
        )
    if name not in OPTIMIZERS:
        raise OptimizerConfigError(
            f"unknown optimizer {name!r} for group {group!r}; choose one of {', '.join(OPTIMIZERS)}"
        )
    try:
        if name == "adamw":
            tx = optax.adamw(lr, weight_decay=weight_decay, **spec)
            weight_decay = 0.0
        else:
            tx = getattr(optax, name)(lr, **spec)
    except TypeError as err:
        raise OptimizerConfigError(f"optimizer.{group}: bad option for {name}: {err}") from None
    if weight_decay:
        # L2 added to the gradient before the optimizer (coupled, like torch's
        # Adam(weight_decay=...)): Adam rescales it, so small values are already strong. For
        # decoupled decay use name="adamw". Applied to this group's parameters only.
        tx = optax.chain(optax.add_decayed_weights(weight_decay), tx)
    return tx


def _merge(graphdef: nnx.GraphDef, params: nnx.State, rest: nnx.State | None) -> nnx.Module:
    return nnx.merge(graphdef, params) if rest is None else nnx.merge(graphdef, params, rest)


class GradientOptimizer(Protocol):
    """What the trainer needs of an optimizer, dense or row-sparse.

    Every method is pure and jit-friendly; the state is a pytree of arrays (no Python objects),
    so orbax checkpoints it like params.
    """

    def init(self, params: nnx.State) -> Any:
        """The initial state for ``params`` (the model's ``nnx.Param`` state)."""
        ...

    def value_and_grad(
        self,
        loss_fn: Callable[..., Any],
        graphdef: nnx.GraphDef,
        params: nnx.State,
        rest: nnx.State | None,
        *args: Any,
        has_aux: bool = False,
    ) -> tuple[Any, Any]:
        """``(loss, grads)`` of ``loss_fn(nnx.merge(graphdef, params, rest), *args)``."""
        ...

    def apply(self, params: nnx.State, state: Any, grads: Any) -> tuple[nnx.State, Any]:
        """One update: ``(params, state)`` after applying ``grads`` from ``value_and_grad``."""
        ...

    def lr_scale(self, state: Any) -> jax.Array:
        """The plateau scale of every learning rate."""
        ...

    def set_lr_scale(self, state: Any, scale: float) -> Any:
        """A copy of ``state`` with the plateau scale set (no recompilation)."""
        ...


@dataclasses.dataclass
class Optimizer:
    """The grouped optax optimizer (every parameter dense), as a ``GradientOptimizer``.

    Attributes:
      tx: the full transformation (clip -> partitioned groups -> injected ``lr_scale``).
      labels: the group label pytree (for inspection and tests).
      groups: the group names that occur in the model.
    """

    tx: optax.GradientTransformation
    labels: Any
    groups: tuple[str, ...]

    def init(self, params: nnx.State) -> Any:
        """The optax state for ``params``."""
        return self.tx.init(params)

    def value_and_grad(
        self,
        loss_fn: Callable[..., Any],
        graphdef: nnx.GraphDef,
        params: nnx.State,
        rest: nnx.State | None,
        *args: Any,
        has_aux: bool = False,
    ) -> tuple[Any, nnx.State]:
        """Loss and the dense gradient of every parameter (``jax.value_and_grad``)."""

        def objective(p):
            return loss_fn(_merge(graphdef, p, rest), *args)

        return jax.value_and_grad(objective, has_aux=has_aux)(params)

    def apply(self, params: nnx.State, state: Any, grads: nnx.State) -> tuple[nnx.State, Any]:
        """``tx.update`` then ``optax.apply_updates``."""
        updates, state = self.tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    def lr_scale(self, state: Any) -> jax.Array:
        """The current plateau scale of every learning rate."""
        return state[-1].hyperparams["step_size"]

    def set_lr_scale(self, state: Any, scale: float) -> Any:
        """A copy of ``state`` with the plateau scale set to ``scale``."""
        inject = state[-1]
        hyper = dict(inject.hyperparams)
        hyper["step_size"] = jnp.asarray(scale, dtype=jnp.asarray(hyper["step_size"]).dtype)
        return (*state[:-1], inject._replace(hyperparams=hyper))


def build_optimizer(config: Mapping[str, Any], params: nnx.State, total_steps: int) -> Optimizer:
    """Builds the grouped optimizer for ``params``.

    Args:
      config: the ``optimizer`` section: ``embeddings``, ``biases``, ``dense`` (each
        ``{name, learning_rate, weight_decay, ...optax kwargs}``; a missing group falls back to
        ``dense``), optional ``schedule`` (``{name, ...}``, shared unless a group sets its own),
        optional ``clip_norm`` (global-norm gradient clipping).
      params: the model's ``nnx.Param`` state (``nnx.split(model, nnx.Param, ...)[1]``).
      total_steps: number of optimizer steps in the run (for schedules).

    Returns:
      An ``Optimizer`` (``init``, ``value_and_grad``, ``apply``, ...; its ``tx`` is the plain
      optax transformation). ``build`` picks between this and the row-sparse optimizer.
    """
    config = dict(config)
    unknown = set(config) - {*GROUPS, "schedule", "clip_norm", "plateau"}
    if unknown:
        raise OptimizerConfigError(
            f"unknown optimizer setting(s) {sorted(unknown)}; expected groups {GROUPS}, "
            "'schedule', 'clip_norm' or 'plateau'"
        )
    labels = param_labels(params)
    present = tuple(sorted(set(jax.tree.leaves(labels))))
    schedule = config.get("schedule")
    transforms = {}
    for group in present:
        spec = config.get(group) or config.get("dense")
        if spec is None:
            raise OptimizerConfigError(
                f"the model has {group} parameters but optimizer.{group} is not set"
            )
        transforms[group] = make_group_optimizer(group, spec, schedule, total_steps)
    chain = []
    if config.get("clip_norm"):
        chain.append(optax.clip_by_global_norm(float(config["clip_norm"])))
    chain.append(optax.partition(transforms, labels))
    chain.append(optax.inject_hyperparams(optax.scale)(step_size=1.0))
    return Optimizer(tx=optax.chain(*chain), labels=labels, groups=present)


# ----------------------------------------------------------------------------------------------
# Row-sparse embedding updates (hybridrec.sparse) behind the same interface

# Dense optimizer name -> its row-sparse counterpart (for ``sparse=True``).
_SPARSE_OF = {"sgd": "sgd", "adagrad": "adagrad", "adam": "lazy_adam", "adamw": "lazy_adam"}
# Other (name, sparse) pairs that agree: row-wise Adagrad is a kind of Adagrad.
_ALSO_SPARSE = {("adagrad", "rowwise_adagrad")}


def sparse_enabled(config: Mapping[str, Any]) -> bool:
    """Whether the ``optimizer`` config section asks for row-sparse embedding updates."""
    spec = config.get("embeddings") or {}
    return bool(spec.get("sparse"))


def row_optimizer_from_config(spec: Mapping[str, Any]) -> sparse.RowOptimizer:
    """The row-sparse optimizer of an ``optimizer.embeddings`` section.

    ``sparse`` is True (the counterpart of ``name``: sgd -> sgd, adagrad -> adagrad,
    adam/adamw -> lazy_adam) or one of ``"sgd"``, ``"adagrad"``, ``"rowwise_adagrad"``,
    ``"lazy_adam"``. Other keys: ``name``, ``learning_rate``, ``schedule``, ``weight_decay`` and
    the algorithm's options (adagrad: ``initial_accumulator_value``, ``eps``,
    ``sum_duplicates``; rowwise_adagrad: ``initial_accumulator_value``, ``eps``; lazy_adam:
    ``b1``, ``b2``, ``eps``).
    """
    spec = dict(spec)
    # False (or absent) with sparse_above_rows reached: the counterpart of name.
    choice = spec.pop("sparse", None) or True
    spec.pop("sparse_above_rows", None)
    spec.pop("large_tables", None)
    name = spec.pop("name", None)
    for key in ("learning_rate", "schedule"):
        spec.pop(key, None)
    if choice is True:
        if (name or "adam") not in _SPARSE_OF:
            raise OptimizerConfigError(
                f"optimizer.embeddings: no row-sparse version of {name!r}; use name sgd, adagrad, "
                "adam or adamw, or set sparse to one of " + ", ".join(sparse.SPARSE_OPTIMIZERS)
            )
        choice = _SPARSE_OF[name or "adam"]
    if choice not in sparse.SPARSE_OPTIMIZERS:
        raise OptimizerConfigError(
            f"optimizer.embeddings.sparse={choice!r}; choose one of "
            f"{', '.join(sparse.SPARSE_OPTIMIZERS)} or True"
        )
    if name is not None and _SPARSE_OF.get(name) != choice and (name, choice) not in _ALSO_SPARSE:
        raise OptimizerConfigError(
            f"optimizer.embeddings: name={name!r} contradicts sparse={choice!r} (the row-sparse "
            f"counterpart of {name!r} is {_SPARSE_OF.get(name)!r})"
        )
    if choice == "lazy_adam":
        spec["decoupled"] = name == "adamw"
    factory = {
        "sgd": sparse.sgd,
        "adagrad": sparse.adagrad,
        "rowwise_adagrad": sparse.rowwise_adagrad,
        "lazy_adam": sparse.lazy_adam,
    }[choice]
    try:
        return factory(**{k: v if isinstance(v, bool) else float(v) for k, v in spec.items()})
    except ValueError as err:
        raise OptimizerConfigError(f"optimizer.embeddings: bad value: {err}") from None
    except TypeError:
        allowed = {
            "sgd": ["weight_decay"],
            "adagrad": ["initial_accumulator_value", "eps", "weight_decay", "sum_duplicates"],
            "rowwise_adagrad": ["initial_accumulator_value", "eps", "weight_decay"],
            "lazy_adam": ["b1", "b2", "eps", "weight_decay"],
        }[choice]
        unknown = sorted(set(spec) - set(allowed) - {"decoupled"})
        raise OptimizerConfigError(
            f"optimizer.embeddings: option(s) {unknown} not supported by row-sparse {choice}; "
            f"it accepts {allowed} plus name, learning_rate, schedule, sparse, sparse_above_rows"
        ) from None


class RowSparseState(NamedTuple):
    """State of a ``RowSparseOptimizer`` (arrays only: orbax saves and restores it as is).

    Attributes:
      count: steps taken (int32 scalar; drives the embeddings' schedule).
      lr_scale: plateau scale of every learning rate (float32 scalar).
      tables: ``{table_key: row-optimizer state}`` (``()`` for SGD, the (num_rows, D)
        accumulator for Adagrad, ``LazyAdamState`` for lazy Adam).
      dense: the grouped optax state of the other params (None if there are none).
    """

    count: jax.Array
    lr_scale: jax.Array
    tables: dict[str, Any]
    dense: Any


@dataclasses.dataclass
class RowSparseOptimizer:
    """Row-sparse updates for ``Embedding`` tables plus the grouped optimizer for everything else.

    A ``GradientOptimizer``: ``value_and_grad`` returns ``hybridrec.sparse.Grads`` (gradients
    of the gathered rows, never a dense table gradient), and ``apply`` updates only the rows in
    the batch.

    The ``Bias`` tables are row tables too when ``bias_schedule`` is set (``build_row_sparse``
    sets it when the biases train by plain SGD, where the row update *is* dense SGD): a dense
    update of a (num_rows,) bias reads and writes the whole table every step, which at 1M users
    was a third of the MF step (2.21 against 1.50 ms with no biases at all).

    Attributes:
      rows: the row optimizer used for every ``Embedding`` table.
      schedule: the embeddings' learning-rate schedule (step -> lr).
      dense: the grouped ``Optimizer`` on the other params (None if there are none); without
        ``clip_norm``, because clipping is done here, over all gradients.
      clip_norm: global-norm clipping over dense and (deduplicated) row gradients, or None.
      table_keys: keys of the row tables, as in ``Grads.rows``.
      bias_schedule: the biases' learning-rate schedule when ``Bias`` tables take row-sparse
        SGD, else None (they are then in ``dense``).
    """

    rows: sparse.RowOptimizer
    schedule: Callable[[jax.Array], jax.Array]
    dense: Optimizer | None
    clip_norm: float | None
    table_keys: tuple[str, ...]
    bias_schedule: Callable[[jax.Array], jax.Array] | None = None

    @property
    def row_types(self) -> tuple[type, ...]:
        """The variable types updated by rows."""
        return (Embedding,) if self.bias_schedule is None else (Embedding, Bias)

    def _row_optimizer(self, var: nnx.Variable) -> sparse.RowOptimizer:
        return _BIAS_ROWS if isinstance(var, Bias) else self.rows

    def init(self, params: nnx.State) -> RowSparseState:
        """Initial state for ``params`` (the ``nnx.Param`` state)."""
        tables, others = sparse.split_params(params, self.row_types)
        return RowSparseState(
            count=jnp.zeros((), jnp.int32),
            lr_scale=jnp.ones((), jnp.float32),
            tables={
                sparse.table_key(path): self._row_optimizer(var).init(var.get_value())
                for path, var in nnx.to_flat_state(tables)
            },
            dense=None if self.dense is None else self.dense.init(others),
        )

    def value_and_grad(
        self,
        loss_fn: Callable[..., Any],
        graphdef: nnx.GraphDef,
        params: nnx.State,
        rest: nnx.State | None,
        *args: Any,
        has_aux: bool = False,
    ) -> tuple[Any, sparse.Grads]:
        """Loss and gradients with tables' gradients as rows (``hybridrec.sparse.value_and_grad``)."""
        return sparse.value_and_grad(
            loss_fn, graphdef, params, rest, *args, has_aux=has_aux, row_types=self.row_types
        )

    def apply(
        self, params: nnx.State, state: RowSparseState, grads: sparse.Grads
    ) -> tuple[nnx.State, RowSparseState]:
        """One optimizer step.

        Args:
          params: the ``nnx.Param`` state.
          state: from ``init`` or a previous ``apply``.
          grads: from ``value_and_grad`` on the same params.

        Returns:
          ``(params, state)`` after the step; table rows not in the batch are unchanged.
        """
        tables, others = sparse.split_params(params, self.row_types)
        missing = set(self.table_keys) - set(grads.rows)
        if missing:
            raise KeyError(f"no row gradients for table(s) {sorted(missing)}")
        lr = self.schedule(state.count) * state.lr_scale
        bias_lr = None if self.bias_schedule is None else self.bias_schedule(state.count)
        bias_lr = None if bias_lr is None else bias_lr * state.lr_scale
        dense_grads = grads.dense
        rows = dict(grads.rows)
        deduped = None
        if self.clip_norm:
            # Clip by the norm of the dense-equivalent gradient: duplicates must be summed first.
            deduped = {}
            for path, var in nnx.to_flat_state(tables):
                key, num_rows = sparse.table_key(path), var.get_value().shape[0]
                ids = jnp.where(rows[key].ids < 0, rows[key].ids + num_rows, rows[key].ids)
                deduped[key] = sparse.unique_rows(ids, rows[key].values, num_rows)
            squares = [jnp.sum(jnp.square(g)) for g in jax.tree.leaves(dense_grads)]
            squares += [jnp.sum(jnp.square(g)) for _, g in deduped.values()]
            norm = jnp.sqrt(sum(squares)) if squares else jnp.zeros(())
            scale = jnp.where(norm < self.clip_norm, 1.0, self.clip_norm / norm)
            dense_grads = jax.tree.map(lambda g: g * scale.astype(g.dtype), dense_grads)
            deduped = {k: (u, g * scale.astype(g.dtype)) for k, (u, g) in deduped.items()}
        new_tables, new_states = [], {}
        for path, var in nnx.to_flat_state(tables):
            key = sparse.table_key(path)
            table, table_state = var.get_value(), state.tables[key]
            optimizer = self._row_optimizer(var)
            table_lr = bias_lr if isinstance(var, Bias) else lr
            if deduped is not None and rows[key].ids.shape[0] > 0:
                table, table_state = optimizer.update_unique(
                    table, table_state, *deduped[key], table_lr
                )
            else:
                table, table_state = optimizer.update(
                    table, table_state, rows[key].ids, rows[key].values, table_lr
                )
            new_tables.append((path, var.replace(table)))
            new_states[key] = table_state
        dense_state = state.dense
        if self.dense is not None:
            others, dense_state = self.dense.apply(others, dense_state, dense_grads)
        params = nnx.merge_state(nnx.from_flat_state(new_tables), others)
        return params, RowSparseState(state.count + 1, state.lr_scale, new_states, dense_state)

    def lr_scale(self, state: RowSparseState) -> jax.Array:
        """The current plateau scale of every learning rate."""
        return state.lr_scale

    def set_lr_scale(self, state: RowSparseState, scale: float) -> RowSparseState:
        """A copy of ``state`` with the plateau scale set to ``scale`` (no recompilation)."""
        dense = state.dense
        if self.dense is not None:
            dense = self.dense.set_lr_scale(dense, scale)
        return state._replace(lr_scale=jnp.asarray(scale, jnp.float32), dense=dense)


def build_row_sparse(
    config: Mapping[str, Any], params: nnx.State, total_steps: int
) -> RowSparseOptimizer:
    """Builds row-sparse embedding updates plus the grouped dense optimizer.

    Args:
      config: the ``optimizer`` section, as for ``build_optimizer``, with ``embeddings.sparse``
        set (see ``row_optimizer_from_config``). The embeddings' schedule is
        ``embeddings.schedule`` or the shared ``schedule``; ``clip_norm`` clips the global norm
        of all gradients (row gradients deduplicated); the plateau ``lr_scale`` scales every
        group.
      params: the ``nnx.Param`` state.
      total_steps: optimizer steps in the run (for schedules).

    Returns:
      A ``RowSparseOptimizer``.
    """
    config = dict(config)
    if not sparse_enabled(config) and not _large_tables(config, params):
        raise OptimizerConfigError(
            "build_row_sparse needs optimizer.embeddings.sparse set (True, or sgd, adagrad, "
            "lazy_adam)"
        )
    spec = dict(config.pop("embeddings"))
    if "learning_rate" not in spec:
        raise OptimizerConfigError("optimizer.embeddings needs a learning_rate")
    rows = row_optimizer_from_config(spec)
    schedule = make_schedule(
        float(spec["learning_rate"]), spec.get("schedule", config.get("schedule")), total_steps
    )
    bias_schedule = _row_sparse_bias_schedule(config, params, total_steps)
    row_types = (Embedding,) if bias_schedule is None else (Embedding, Bias)
    if config.get("biases"):
        config["biases"] = {k: v for k, v in dict(config["biases"]).items() if k != "sparse"}
    tables, others = sparse.split_params(params, row_types)
    clip_norm = config.pop("clip_norm", None)
    dense = build_optimizer(config, others, total_steps) if jax.tree.leaves(others) else None
    return RowSparseOptimizer(
        rows=rows,
        schedule=schedule,
        dense=dense,
        clip_norm=float(clip_norm) if clip_norm else None,
        table_keys=tuple(sparse.table_key(path) for path, _ in nnx.to_flat_state(tables)),
        bias_schedule=bias_schedule,
    )


# Row-sparse SGD for Bias tables (no weight decay: then it is exactly dense SGD).
_BIAS_ROWS = sparse.sgd()


def _row_sparse_bias_schedule(config: Mapping[str, Any], params: nnx.State, total_steps: int):
    """The biases' schedule when they take row-sparse SGD beside row-sparse embeddings, or None.

    ``optimizer.biases`` must be plain SGD (``name="sgd"``, no weight decay, no options): then
    updating only the looked-up rows is exactly the dense update (a row out of the batch has a
    zero gradient), so it is chosen by itself; ``biases.sparse=False`` keeps them dense (for a
    model of one's own that reads a ``Bias`` table other than through
    ``hybridrec.variables.lookup``).
    """
    spec = dict(config.get("biases") or {})
    choice = spec.pop("sparse", None)
    if choice is False or not any(isinstance(var, Bias) for _, var in nnx.to_flat_state(params)):
        return None
    plain = (
        spec.get("name") == "sgd"
        and not spec.get("weight_decay")
        and set(spec) <= {"name", "learning_rate", "schedule"}
    )
    if not plain:
        if choice:
            raise OptimizerConfigError(
                f"optimizer.biases.sparse=True needs plain SGD (name='sgd', no weight decay or "
                f"options), got {dict(config['biases'])}"
            )
        return None
    if "learning_rate" not in spec:
        raise OptimizerConfigError("optimizer.biases needs a learning_rate")
    return make_schedule(
        float(spec["learning_rate"]), spec.get("schedule", config.get("schedule")), total_steps
    )


def build(config: Mapping[str, Any], params: nnx.State, total_steps: int) -> GradientOptimizer:
    """The optimizer the ``optimizer`` config section asks for, dense or row-sparse.

    Args:
      config: the ``optimizer`` section (see ``build_optimizer``); with ``embeddings.sparse``
        true, or an ``Embedding`` table of at least ``embeddings.sparse_above_rows`` rows,
        ``Embedding`` tables get row-sparse updates (``build_row_sparse``); in the second case
        by ``embeddings.large_tables`` when it is set (``large_tables_spec``).
      params: the model's ``nnx.Param`` state (``nnx.split(model, nnx.Param, ...)[1]``).
      total_steps: number of optimizer steps in the run (for schedules).

    Returns:
      An ``Optimizer`` or a ``RowSparseOptimizer``; both are ``GradientOptimizer``s.
    """
    if _large_tables(config, params) and large_tables_spec(config) is not None:
        config = dict(config, embeddings=large_tables_spec(config))
    if sparse_enabled(config) or _large_tables(config, params):
        return build_row_sparse(config, params, total_steps)
    return build_optimizer(config, params, total_steps)


def large_tables_spec(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """``embeddings.large_tables``: the embeddings' optimizer once a table is large, or None.

    A full ``embeddings`` section of its own (``name``, ``learning_rate``, ``sparse`` - True by
    default -, options), used instead of ``embeddings`` when a table has ``sparse_above_rows``
    rows; None keeps ``embeddings`` there too, with its row-sparse counterpart. It lets a config
    tuned on small tables (Adam, dense) pick what trains large tables fast and well: row-wise
    Adagrad (``hybridrec.sparse.RowwiseAdagrad``) in ``experiments/configs/base.py``.
    """
    spec = (config.get("embeddings") or {}).get("large_tables")
    if not spec:
        return None
    spec = dict(spec)
    spec.setdefault("sparse", True)
    spec["sparse_above_rows"] = config["embeddings"].get("sparse_above_rows")
    return spec


def largest_table_rows(params: nnx.State) -> int:
    """Rows of the largest ``Embedding`` table in ``params`` (0 without one)."""
    tables = [
        v
        for v in jax.tree.leaves(params, is_leaf=lambda x: isinstance(x, nnx.Variable))
        if isinstance(v, Embedding)
    ]
    return max((int(v.value.shape[0]) for v in tables), default=0)


def _large_tables(config: Mapping[str, Any], params: nnx.State) -> bool:
    """``embeddings.sparse_above_rows``: row-sparse updates once a table is that large.

    Fast by default at every size: a dense optimizer touches every row of every table each step
    (at 100k users x 20k items, dense Adam ran ~20 ms a step against ~8 ms for lazy Adam, which
    also reached a higher NDCG@10 after 2 epochs: 0.087 vs 0.065, benchmarks/bench_scale.py;
    row-wise Adagrad, base.py's ``large_tables``, then ran faster still and reached 0.113),
    while on MovieLens-sized tables the dense update is the faster one.
    """
    spec = config.get("embeddings") or {}
    threshold = spec.get("sparse_above_rows")
    return bool(threshold) and largest_table_rows(params) >= int(threshold)


@dataclasses.dataclass
class ReduceOnPlateau:
    """Host-side reduce-on-plateau on a validation metric (as PyTorch's ``ReduceLROnPlateau``).

    After more than ``patience`` evaluations without an improvement of more than ``threshold`` (relative),
    the learning-rate scale is multiplied by ``factor`` (never below ``min_scale``); ``cooldown``
    evaluations then pass before counting again.
    """

    metric: str = "val/ndcg@10"
    mode: str = "max"
    factor: float = 0.1
    patience: int = 1
    threshold: float = 1e-4
    cooldown: int = 0
    min_scale: float = 1e-4
    scale: float = 1.0
    best: float = -math.inf
    bad_evals: int = 0
    cooldown_left: int = 0

    def __post_init__(self):
        if self.mode not in ("max", "min"):
            raise OptimizerConfigError(f"plateau mode must be 'max' or 'min', got {self.mode!r}")
        if self.mode == "min" and self.best == -math.inf:
            self.best = math.inf

    def _improved(self, value: float) -> bool:
        if self.mode == "max":
            return (
                value > self.best + abs(self.best) * self.threshold
                if math.isfinite(self.best)
                else True
            )
        return (
            value < self.best - abs(self.best) * self.threshold
            if math.isfinite(self.best)
            else True
        )

    def update(self, metrics: Mapping[str, float]) -> float:
        """Feeds one evaluation's metrics; returns the (possibly reduced) scale."""
        if self.metric not in metrics:
            raise OptimizerConfigError(
                f"plateau metric {self.metric!r} is not among the evaluation metrics {sorted(metrics)}"
            )
        value = float(metrics[self.metric])
        if self._improved(value):
            self.best, self.bad_evals = value, 0
        elif self.cooldown_left > 0:
            self.cooldown_left -= 1
        else:
            self.bad_evals += 1
            if self.bad_evals > self.patience:  # PyTorch's convention
                self.scale = max(self.scale * self.factor, self.min_scale)
                self.bad_evals, self.cooldown_left = 0, self.cooldown
        return self.scale

    def state_dict(self) -> dict[str, float]:
        return {k: getattr(self, k) for k in ("scale", "best", "bad_evals", "cooldown_left")}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, type(getattr(self, key))(value))
