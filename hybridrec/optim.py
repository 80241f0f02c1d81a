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
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

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
    if spec.pop("sparse", False):
        raise OptimizerConfigError(
            f"optimizer.{group}.sparse is set: build with hybridrec.sparse.build, not build_optimizer"
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


@dataclasses.dataclass
class Optimizer:
    """The built optax transformation plus what the trainer needs to drive it.

    Attributes:
      tx: the full transformation (clip -> partitioned groups -> injected ``lr_scale``).
      labels: the group label pytree (for inspection and tests).
      groups: the group names that occur in the model.
    """

    tx: optax.GradientTransformation
    labels: Any
    groups: tuple[str, ...]

    @staticmethod
    def lr_scale(opt_state: Any) -> jax.Array:
        """The current plateau scale of every learning rate."""
        return opt_state[-1].hyperparams["step_size"]

    @staticmethod
    def set_lr_scale(opt_state: Any, scale: float) -> Any:
        """A copy of ``opt_state`` with the plateau scale set to ``scale``."""
        inject = opt_state[-1]
        hyper = dict(inject.hyperparams)
        hyper["step_size"] = jnp.asarray(scale, dtype=jnp.asarray(hyper["step_size"]).dtype)
        return (*opt_state[:-1], inject._replace(hyperparams=hyper))


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
      An ``Optimizer``; ``tx.init(params)`` and ``tx.update(grads, state, params)`` as usual.
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
