"""Training objectives as plug-ins: how a batch is assembled and what loss it is scored by.

An objective is one module, found by name like the towers (``hybridrec.plugins``):
``config.train.objective = "pairwise"`` imports ``hybridrec.objectives.pairwise``, and
``"my_pkg.my_objective"`` a researcher's own module. Each module defines ``Objective``, a class
built from the config with two methods, both traced inside the jitted training step:

- ``make_batch(batch, data, key) -> batch``: from the step's positives (``user_ids``,
  ``item_ids``, ``weights``, ``ratings``; shape ``(B,)``) and the device-resident ``data``
  (``users`` / ``items`` entity tables, the negative ``sampler``), add everything the loss reads:
  entity batches ``users`` and ``pos_items``, negatives, sampling probabilities, ...;
- ``loss(model, batch, key) -> scalar``: score the batch with the model and reduce it.

``config.train.objective = None`` picks the objective the loss is written for (its ``kind``:
pairwise losses -> ``pairwise``, ``sampled_softmax`` -> ``sampled_softmax``, ``full_softmax``
-> ``full_softmax``, rating losses -> ``rating``), so configs that only name a loss work as
before. A new objective (say, in-batch negatives) is one file: subclass ``Objective`` (its
``make_batch`` gathers the users and positives) and write the two methods.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import ml_collections

from hybridrec import losses
from hybridrec.data import history as history_lib

__all__ = ["Objective", "ObjectiveError", "available_objectives", "build", "gather"]

_BY_KIND = {
    "pairwise": "pairwise",
    "sampled_softmax": "sampled_softmax",
    "full_softmax": "full_softmax",
    "pointwise_rating": "rating",
}


class ObjectiveError(ValueError):
    """A config whose objective, loss and data do not fit together; the message names the key."""


# What objectives pass to a loss themselves: never a ``config.train.loss_options`` key.
_SUPPLIED = frozenset(
    "pos_scores neg_scores scores ratings weights neg_mask pos_meta neg_meta metadata_weights "
    "pos_log_q neg_log_q pos_item_ids neg_item_ids num_items reduction".split()
)


def _loss_options(loss_fn) -> set[str] | None:
    """The keyword options ``loss_fn`` takes (None: it takes any, through ``**kwargs``)."""
    params = inspect.signature(loss_fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None
    return set(params) - _SUPPLIED


def _check_loss_options(name: str, loss_fn, options: Mapping[str, Any]) -> dict[str, Any]:
    """The options ``loss_fn`` takes, out of ``config.train.loss_options``.

    An option of another registered loss is dropped with a warning: it is what a config
    derived from another (``hybrid.py``'s ``mean_weight``) keeps when only its loss is changed,
    e.g. ``--config.train.loss=bpr``, and the command line cannot delete a key. Any other name
    is a typo and raises, naming the options the loss takes (else it would surface as a
    ``TypeError`` from inside the traced step).
    """
    known = _loss_options(loss_fn)
    if known is None:
        return dict(options)
    elsewhere = set().union(*(_loss_options(f) or set() for f in losses.LOSSES.values()))
    bad = sorted(k for k in options if k not in known and k not in elsewhere)
    if bad:
        raise ObjectiveError(
            f"config.train.loss_options has {', '.join(map(repr, bad))}, which loss {name!r} "
            f"does not take; its options: {', '.join(sorted(known)) or 'none'}"
        )
    dropped = sorted(k for k in options if k not in known)
    if dropped:
        warnings.warn(
            f"config.train.loss_options: {', '.join(map(repr, dropped))} ignored, an option of "
            f"another loss that loss {name!r} does not take (its options: "
            f"{', '.join(sorted(known)) or 'none'})",
            stacklevel=3,
        )
    return {k: v for k, v in options.items() if k in known}


def gather(table: Mapping[str, jax.Array], ids: jax.Array) -> dict[str, jax.Array]:
    """Rows ``ids`` (any shape) of every array of an entity table."""
    return {k: v[ids] for k, v in table.items()}


class Objective:
    """Base class: gathers the batch's users and positive items; subclasses add the rest.

    Args:
      config: the experiment config (``config.train`` is read).
      num_items: the catalogue size.

    Attributes:
      kind: the loss kind this objective feeds (``losses.get_loss(name).kind``).
      loss_fn: the loss function named by ``config.train.loss``.
      options: its keyword options (``config.train.loss_options``).
      item_keys: item-table arrays ``make_batch`` reads beyond what the model reads.
    """

    kinds: tuple[str, ...] = ()

    def __init__(self, config: ml_collections.ConfigDict, num_items: int):
        tc = config.train
        self.loss_name = tc.loss
        self.loss_fn = losses.get_loss(tc.loss)
        self.kind = self.loss_fn.kind
        if self.kinds and self.kind not in self.kinds:
            raise ObjectiveError(
                f"objective {type(self).__module__.rsplit('.', 1)[-1]!r} trains {self.kinds} "
                f"losses; config.train.loss={tc.loss!r} is a {self.kind!r} loss"
            )
        self.options = _check_loss_options(tc.loss, self.loss_fn, tc.get("loss_options") or {})
        if getattr(self.loss_fn, "needs_num_items", False):
            self.options["num_items"] = num_items
        self.num_items = num_items
        self.item_keys: set[str] = set()

    @property
    def needs_ratings(self) -> bool:
        return self.kind == "pointwise_rating"

    def make_batch(self, batch: dict, data: Mapping[str, Any], key: jax.Array) -> dict:
        """Adds ``users`` and ``pos_items`` (entity batches of B rows) to ``batch``."""
        users = gather(data["users"], batch["user_ids"])
        if history_lib.IDS in users:
            # Leave-one-out history: predict the positive from the user's other items, pooled
            # per row or, on small data, for all users at once (hybridrec.data.history).
            if history_lib.ALL_USERS in data:
                users = history_lib.target_out_of_all_users(
                    users, data[history_lib.ALL_USERS], batch["user_ids"], batch["item_ids"]
                )
            else:
                users = history_lib.mask_target(users, batch["item_ids"])
        return {**batch, "users": users, "pos_items": gather(data["items"], batch["item_ids"])}

    def loss(self, model, batch: Mapping[str, Any], key: jax.Array) -> jax.Array:
        raise NotImplementedError


def available_objectives() -> list[str]:
    """The objective modules in this package."""
    here = os.path.dirname(__file__)
    return sorted(f[:-3] for f in os.listdir(here) if f.endswith(".py") and f[0] != "_")


def build(config: ml_collections.ConfigDict, *, num_items: int) -> Objective:
    """The objective ``config.train.objective`` names, or the one its loss is written for."""
    from hybridrec.plugins import load_module_attr

    name = config.train.get("objective")
    if name is None:
        kind = losses.get_loss(config.train.loss).kind
        name = _BY_KIND.get(kind)
        if name is None:
            raise ObjectiveError(
                f"no default objective for config.train.loss={config.train.loss!r} (kind "
                f"{kind!r}); set config.train.objective"
            )
    cls = load_module_attr(
        __name__,
        name,
        "Objective",
        what="objective",
        available=available_objectives(),
        error=ObjectiveError,
    )
    return cls(config, num_items)
