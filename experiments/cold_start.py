"""Cold-start ablation: which towers let a model score items and users it never saw in training.

Usage (from the repository root)::

    python -m experiments.cold_start --config hybrid.py [--seeds 3] [--out DIR] [--smoke]
        [--splits cold_items,cold_users] [--subsets ids,all,metadata] [--id-dropout 0.3]
        [--field-dropout 0.1] [--warm] [--no-peer] [--lightfm-epochs 30] [--lightfm-threads 2]

The cold-item benchmark of issue 11 (hybridrec beside LightFM, 5 seeds, paired tests)::

    python -m experiments.cold_start --config hybrid.py --seeds 5 --splits cold_items \
        --subsets ids,all --warm --id-dropout 0 --out runs/cold_start-lightfm

``--id-dropout 0`` trains ``hybrid.py`` as it ships (no ID dropout): without the flag a config
whose ID dropout is 0 gets ``DEFAULT_ID_DROPOUT`` (0.3) on the cold side, a setting for configs
not designed for cold entities.

Runtime: one hybrid training run on MovieLens 100K takes ~30 s on a quiet 2-core CPU (~2 min
when the machine is shared); a LightFM fit (WARP, dim 64, 30 epochs, 2 threads) ~2-3 s, EASE
~4 s. The command above is 5 seeds x (4 item-cold hybrid/popularity runs + LightFM + 3 warm
runs) ~ 40 runs: about 15-20 minutes quiet, up to an hour shared. ``--seeds 1`` is a check.

For each cold-start split (item-cold, user-cold), the config's model is trained with subsets of
the *cold side's* towers (the other side keeps the config's towers):

- ``ids``: the ID tower only (the reference of the paired tests): a cold entity has a zero
  embedding and no bias, so all cold items tie, and a cold user is ranked the items by their
  learned biases alone (a popularity ranking);
- ``ids+<tower>``: the ID tower plus one metadata tower, one row per metadata tower;
- ``all``: the ID tower plus every metadata tower (the config's model);
- ``metadata``: every metadata tower and no ID tower nor ID bias (warm entities are then
  represented by their metadata alone too);
- ``popularity``: the popularity baseline (fitted by the trainer): the same ranking for every
  user, cold or warm, with every cold item below every warm one.

Runs with both an ID tower and metadata towers use ID dropout on the cold side (``--id-dropout``;
by default the config's own value when it is above 0, else 0.3, so that ``all`` is the config's
model as it is): in training, that share of the entities of each step lose their ID embedding
and bias, so the metadata towers learn to stand in for them.

Protocol: one split that holds out both a cold and a warm part
---------------------------------------------------------------
A plain ``cold_items`` split puts only cold items in validation and test, so there is nothing to
measure warm performance on; a separate stratified run would measure it on another model.
Instead each run uses ``cold_and_warm_split`` (registered with ``hybridrec.data.splits`` while
the ablation trains): first 20% of the items (users) that occur go wholly to test and 5% to
validation (``cold_item_split``); then, from what is left, 10% of each user's interactions go
to test and 5% to validation (``stratified_split``). Test and validation are the unions of their
cold and warm parts. The trainer's segments then split the same evaluation: ``cold_items`` /
``warm_items`` (a user's relevant items restricted to the segment, the other test items removed
from the ranking, all items as candidates) or ``cold_users`` / ``warm_users``. Ranking cold
items against the whole catalogue asks two things at once: are metadata-only scores on the
same scale as the ID-informed scores of warm items, and do they order the cold items well? So for
the item-cold split the ablation adds ``cold_items_among_cold``: each user's relevant cold items
ranked among the cold items only (``item_segment_candidates="segment"``, the usual cold-start
score of LightFM-style experiments), computed from the run's last checkpoint. There, tied
scores count by their expectation over every order of the tied items (``tie_break="expected"``
of ``hybridrec.evaluation.evaluate``), never by item index: the
ID-only model and popularity score all cold items alike, and MovieLens item indices follow
popularity, so index order would score them like a popularity ranking (on the item-cold split
of MovieLens 100K, cold items in index order: NDCG@10 0.080, in a random order 0.022, in reverse
index order 0.000; the measurements below before the LightFM section used one random order).
Validation drives
the config's reduce-on-plateau; **test** is what is reported. The split (and the model's
initialisation) changes with the seed, so the seeds cover split variance too.

The peer: LightFM beside hybridrec
----------------------------------
When ``lightfm`` is importable (an optional peer, never a hybridrec dependency: see
``benchmarks/requirements-peers.txt``; without it the row is skipped with a note in the output
and in ``ablation.md``; ``--no-peer`` skips it too), each seed of the item-cold split also fits
LightFM (Kula 2015; ``LIGHTFM_OPTIONS``: WARP, ``no_components=64``, learning rate 0.05,
``--lightfm-epochs`` 30 by default, ``--lightfm-threads`` 2) on the very same training
positives, the same split and the same encoded item metadata as the hybrid towers (identity
features + one feature per genre, per title word with its TF-IDF weight, per release-year
quantile bucket; rows normalised to sum 1 as ``lightfm.data.Dataset`` does; users: identity
only), and scores it with hybridrec's own evaluator exactly as the trainer scores the hybrid
runs (same segments, and cold items ranked among cold items). ``ablation.md`` then holds a
second set of tables where every row is compared with LightFM's over the same (seed, user)
pairs (also ``ablation_vs_lightfm.csv``). LightFM has no row on the user-cold split (no user
metadata is given to it).

Measured on MovieLens 100K (2026-12-04; ``hybrid.py``, 5 seeds, ``--subsets ids,all
--field-dropout 0.1 --warm``, 40 runs in ~22 minutes on the shared 2-core CPU; mean over (seed,
user) pairs, differences from LightFM by paired t-test):

- cold items ranked among cold items: LightFM NDCG@10 0.137, Recall@10 0.111, AUC 0.772;
  ``all`` 0.084 / 0.071 / 0.709 (-0.053, -0.041, -0.063, all p < 1e-4); ``all+fd0.1``
  0.082 / 0.068 / 0.706; ``ids`` 0.022 / 0.016 / 0.500 (ties, by expectation). Ranked against
  the whole catalogue, no model puts a cold item in a top 10; AUC ``all`` 0.669, LightFM 0.528.
- warm items of the item-cold split: LightFM 0.237 / 0.288 / 0.954, ``all`` 0.239 / 0.292 /
  0.943 (NDCG and Recall p > 0.2, AUC -0.011 p < 1e-4).
- warm benchmark (Collie split, whole held-out set): ``hybrid`` 0.248 / 0.270 / 0.9385,
  ``hybrid+fd0.1`` 0.249 / 0.271 / 0.9387, EASE 0.264 / 0.282 / 0.933, LightFM 0.237 / 0.261 /
  0.944: hybrid beats LightFM on NDCG@10 (+0.012) and Recall@10 (+0.009) and loses on AUC
  (-0.005), all p < 0.005; EASE leads NDCG@10 and Recall@10.
- field dropout 0.1 (both sides) against the same model without, paired: warm benchmark
  +0.0007 NDCG@10 (p = 0.64); item-cold split: cold among cold NDCG@10 -0.002 (p = 0.07), AUC
  -0.003 (p < 1e-4), cold against the catalogue AUC +0.005 (p < 1e-4), warm items NDCG@10
  -0.004 (p = 0.005). It does not rescue cold items; what it buys is a new entity with missing
  fields scored by trained weights (``hybridrec.models.hybrid``).

``--warm`` adds the warm benchmark (split kind ``standard``): the config trained on its own
split (for ``hybrid.py``, Collie's: ratings >= 4, 10% of each user's positives held out, split
seed 42; the seed changes the models' initialisation), EASE (``ease.py``'s model, l2 500) and
LightFM on that same split, all scored by the evaluator on the whole held-out set.
``--field-dropout r`` adds ``all+fd<r>`` (and ``hybrid+fd<r>`` in the warm benchmark): the
same run with field dropout ``r`` on both sides (``hybridrec.models.hybrid``: in training, each
metadata field is replaced by its missing encoding with probability r, so that a new entity
with missing fields is scored by what training saw).

Statistics: for every (split, towers, segment, metric), the per-user values of all seeds are
pooled (a unit is a (seed, user) pair); the table gives their mean with a 95% Student-t interval
(``hybridrec.evaluation.confidence_interval``) and the standard deviation of the per-seed means.
Each subset is compared with ``ids`` by ``hybridrec.evaluation.paired_test`` on the same (seed,
user) pairs: mean difference, bootstrap 95% interval, paired t-test p-value.

Output (``--out``, default ``runs/cold_start-<time>``): one ``train_and_evaluate`` run directory
per (split, towers, seed) under ``<split>/<towers>/seed<k>/`` (config, metrics, TensorBoard events
with the run's hyperparameters, checkpoints, ``per_user.npz``); ``ablation.md`` (the tables),
``ablation.csv`` (long form: one row per split, towers, segment and metric),
``ablation_<split>_<metric>.png`` (``hybridrec.plots.plot_ablation``), and ``summary/`` with one
TensorBoard run per (split, towers) holding the pooled means, so ``tensorboard --logdir <out>``
compares everything. Rerunning into the same ``--out`` skips finished runs and resumes
interrupted ones.

Measured on MovieLens 100K with ``hybrid.py`` (3 seeds, 45 runs: about 21 minutes on the
2-core CPU; test part, mean over (seed, user) pairs; differences from ``ids`` with paired-test
p-values):

- item-cold, cold items ranked among themselves: ``all`` NDCG@10 0.062, Recall@10 0.046, AUC
  0.664, against 0.011, 0.006, 0.500 for ``ids`` and ``popularity`` (both tie every cold item):
  +0.052, +0.039, +0.164, all p < 1e-4. ``metadata`` (0.057 / 0.042 / 0.649) follows; alone,
  genres help most (``ids+genres`` NDCG@10 0.037), then the title (0.032) and the year (0.024),
  and the three together add up to more than any one.
- item-cold, cold items ranked against the whole catalogue: no model puts a cold item in a top
  10 (NDCG@10 <= 0.005 for every row); AUC ``all`` 0.645 against 0.453 for ``ids`` and 0.186
  for ``popularity``; ``ids+genres`` (0.695) and ``ids+year`` (0.683) place cold items best:
  more towers did not calibrate metadata-only scores against warm ones.
- warm items: ``all`` NDCG@10 0.227 vs ``ids`` 0.228 (p = 0.74); genres alone +0.012 (p < 1e-4);
  popularity 0.110.
- user-cold (users held out, no history): ``all`` (demographics + history, with user ID dropout
  that drops the history too) raises cold users' AUC (0.858 vs ``ids`` 0.824, p < 1e-4) but not
  their NDCG@10 (0.383 vs 0.396, p = 0.03); popularity is best for cold users (NDCG@10 0.407,
  AUC 0.874). For warm users the history tower helps (``ids+history`` AUC +0.006, p < 1e-4).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import ml_collections
import numpy as np
import pandas as pd

from hybridrec.data import splits
from hybridrec.data.interactions import Interactions

__all__ = [
    "METRICS",
    "SPLIT_NAME",
    "AMONG_COLD",
    "AblationError",
    "ablation_runs",
    "cold_and_warm_split",
    "load_config",
    "main",
    "run_ablation",
    "summarize",
    "to_markdown",
    "tower_subsets",
    "write_report",
]

#: Name under which ``cold_and_warm_split`` is registered in ``hybridrec.data.splits.SPLITS``.
SPLIT_NAME = "cold_and_warm"
#: The metrics reported (per-user metrics of ``hybridrec.evaluation``).
METRICS = ("ndcg@10", "recall@10", "auc")
#: Relevant cold items ranked among the cold items only (added by the ablation, see
#: ``_post_evaluate``); the trainer's ``cold_items`` ranks them against the whole catalogue.
AMONG_COLD = "cold_items_among_cold"
#: The split kinds: the side they make cold, the trainer's segments, and the reported segments.
SPLITS = {
    "cold_items": dict(
        entity="item",
        segments=("cold_items", "warm_items"),
        reported=("cold_items", AMONG_COLD, "warm_items"),
    ),
    "cold_users": dict(
        entity="user",
        segments=("cold_users", "warm_users"),
        reported=("cold_users", "warm_users"),
    ),
}
#: The cold-start split kinds of the ablation.
COLD_SPLITS = tuple(SPLITS)
#: The warm benchmark (``--warm``): the config's own split (no cold part), its whole test set.
STANDARD = "standard"
SPLITS[STANDARD] = dict(entity=None, segments=(), reported=("all",))
#: The reference subset of the paired tests, and the baseline row.
REFERENCE = "ids"
POPULARITY = "popularity"
#: The peer measured beside hybridrec (optional: skipped with a note when not importable), the
#: rows of the warm benchmark, and the options of the peer.
PEER = "lightfm"
HYBRID_ROW = "hybrid"
EASE_ROW = "ease"
#: LightFM's options (``lightfm.LightFM``) and training budget; dim 64 as in issue 11.
LIGHTFM_OPTIONS = dict(no_components=64, loss="warp", learning_rate=0.05, max_sampled=10)
LIGHTFM_EPOCHS = 30
#: Split fractions (see the module docstring).
SPLIT_OPTIONS = dict(test_p=0.2, val_p=0.05, warm_test_p=0.1, warm_val_p=0.05)
DEFAULT_ID_DROPOUT = 0.3
CONFIDENCE = 0.95


class AblationError(ValueError):
    """A config the ablation cannot run (not a tower model, no towers), or bad arguments."""


# --------------------------------------------------------------------------------- the split
def cold_and_warm_split(
    interactions: Interactions,
    entity: str = "item",
    test_p: float = 0.2,
    val_p: float = 0.05,
    warm_test_p: float = 0.1,
    warm_val_p: float = 0.05,
    seed: int = 0,
) -> splits.Split:
    """Holds out cold entities (all their interactions) and a per-user share of the rest.

    Args:
      interactions: (N,) interactions.
      entity: ``"item"`` or ``"user"``: which side is made cold.
      test_p, val_p: fractions of the entities that occur held out for test / validation
        (``cold_item_split`` / ``cold_user_split``).
      warm_test_p, warm_val_p: fractions of each user's remaining interactions held out for test /
        validation (``stratified_split`` with ``force_split``: users with too few stay in train).
      seed: seed of both shuffles.

    Returns:
      A ``Split`` whose ``val`` and ``test`` are the unions of the cold and warm parts (``val``
      None when both validation fractions are 0), with ``cold_items`` or ``cold_users`` set to
      the held-out entities (validation and test).
    """
    if entity not in ("item", "user"):
        raise splits.SplitError(f"{SPLIT_NAME}: entity must be 'item' or 'user', got {entity!r}")
    cold_fn = splits.cold_item_split if entity == "item" else splits.cold_user_split
    cold = cold_fn(interactions, test_p=test_p, val_p=val_p, seed=seed)
    warm = splits.stratified_split(
        cold.train, test_p=warm_test_p, val_p=warm_val_p, seed=seed, force_split=True
    )
    vals = [part for part in (cold.val, warm.val) if part is not None]
    val = vals[0].concatenate(vals[1]) if len(vals) == 2 else (vals[0] if vals else None)
    return splits.Split(
        train=warm.train,
        val=val,
        test=cold.test.concatenate(warm.test),
        cold_items=cold.cold_items,
        cold_users=cold.cold_users,
    )


@contextlib.contextmanager
def _split_registered() -> Iterator[None]:
    """Makes ``config.split.name="cold_and_warm"`` known to the trainer while the ablation runs.

    The trainer builds splits by name from ``hybridrec.data.splits.SPLITS``; the entry is
    removed again afterwards, so the registry is unchanged outside the ablation.
    """
    added = SPLIT_NAME not in splits.SPLITS
    splits.SPLITS[SPLIT_NAME] = cold_and_warm_split
    try:
        yield
    finally:
        if added:
            splits.SPLITS.pop(SPLIT_NAME, None)


# --------------------------------------------------------------------------------- the runs
def _plain(spec: Any) -> Any:
    return spec.to_dict() if isinstance(spec, ml_collections.ConfigDict) else spec


def tower_subsets(towers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The tower subsets of one side: ``ids``, ``ids+<tower>``..., ``all``, ``metadata``.

    Args:
      towers: the side's towers, name -> spec (``dict(tower=..., ...)``), as in a hybrid config.

    Returns:
      Subset name -> towers, in that order. ``ids+<tower>`` rows are left out when there is a
      single metadata tower (``all`` is the same model); with no metadata tower only ``ids``.

    Raises:
      AblationError: the side has no ID tower.
    """
    towers = {name: _plain(spec) for name, spec in towers.items()}
    ids = {n: s for n, s in towers.items() if s.get("tower") == "ids"}
    meta = {n: s for n, s in towers.items() if s.get("tower") != "ids"}
    if not ids:
        raise AblationError(
            f"the cold side's towers {sorted(towers)} have no ID tower (tower='ids'): the "
            "ablation compares metadata towers with the ID-only model"
        )
    out = {REFERENCE: dict(ids)}
    if len(meta) > 1:
        for name, spec in meta.items():
            out[f"ids+{name}"] = {**ids, name: spec}
    if meta:
        out["all"] = dict(towers)
        out["metadata"] = dict(meta)
    return out


def _apply_towers(
    config: ml_collections.ConfigDict,
    entity: str,
    towers: dict[str, Any],
    id_dropout: float,
    field_dropout: float = 0.0,
) -> None:
    has_ids = any(s.get("tower") == "ids" for s in towers.values())
    has_meta = any(s.get("tower") != "ids" for s in towers.values())
    config.model[f"{entity}_towers"] = towers
    if field_dropout:
        # Both sides: a new entity of either side may come with missing fields.
        config.model["field_dropout"] = float(field_dropout)
        config.model["user_field_dropout"] = float(field_dropout)
    # ID dropout only helps when metadata towers can stand in for the dropped IDs.
    config.model["id_dropout" if entity == "item" else "user_id_dropout"] = (
        float(id_dropout) if has_ids and has_meta else 0.0
    )
    if not has_ids:
        config.model[f"{entity}_bias"] = False  # "metadata only": no per-entity ID bias either


def ablation_runs(
    base: ml_collections.ConfigDict,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    split_kinds: Sequence[str] = COLD_SPLITS,
    subsets: Sequence[str] | None = None,
    id_dropout: float | None = None,
    split_options: Mapping[str, float] | None = None,
    field_dropout: float = 0.0,
    peer: bool = False,
    warm: bool = False,
) -> list[dict[str, Any]]:
    """The runs of the ablation: one config per (split kind, towers, seed), plus popularity.

    Args:
      base: a ``hybrid`` model config (``model.user_towers`` / ``model.item_towers``).
      seeds: model and split seeds.
      split_kinds: ``"cold_items"`` and/or ``"cold_users"``.
      subsets: subset names to keep (``ids``, ``ids+<tower>``, ``all``, ``metadata``,
        ``popularity``); None for all. ``ids`` is always run (the reference).
      id_dropout: the cold side's ID dropout in runs with IDs and metadata; None: the config's
        own (``model.id_dropout`` for items, ``model.user_id_dropout`` for users) when it is
        above 0, else ``DEFAULT_ID_DROPOUT`` (so ``all`` on the item-cold split is the config's
        model as it is).
      split_options: overrides of ``SPLIT_OPTIONS``.
      field_dropout: if > 0, each ``all`` run gets a sibling ``all+fd<rate>`` with that field
        dropout on both sides (``hybridrec.models.hybrid``), on the same split and seed.
      peer: add a LightFM run (``towers="lightfm"``) per seed of the item-cold split (and of
        the warm benchmark); its config holds the data, split and features it is fitted on.
      warm: add the warm benchmark, split kind ``"standard"``: the config as it is (its own
        split), ``hybrid+fd<rate>`` when ``field_dropout`` > 0, EASE, and LightFM if ``peer``.

    Returns:
      ``[{"split": kind, "towers": name, "seed": s, "config": ConfigDict}, ...]``.

    Raises:
      AblationError: not a hybrid config, an unknown split kind or subset name.
    """
    if base.model.get("name") != "hybrid":
        raise AblationError(
            f"the cold-start ablation needs a 'hybrid' model config (towers per side), got "
            f"model.name={base.model.get('name')!r}"
        )
    unknown = [k for k in split_kinds if k not in COLD_SPLITS]
    if unknown:
        raise AblationError(
            f"unknown split kind(s) {unknown}; choose from {sorted(COLD_SPLITS)} "
            "(--warm adds the standard split)"
        )
    options = {**SPLIT_OPTIONS, **dict(split_options or {})}
    per_kind = {}
    for kind in split_kinds:
        towers = base.model.get(f"{SPLITS[kind]['entity']}_towers") or {"id": {"tower": "ids"}}
        per_kind[kind] = {**tower_subsets(towers), POPULARITY: None}
    if subsets is not None:
        # A subset may exist on one side only (ids+genres for items, ids+age for users).
        known = {name for available in per_kind.values() for name in available}
        missing = [s for s in subsets if s not in known]
        if missing:
            raise AblationError(
                f"unknown tower subset(s) {missing}; this config has {sorted(known)}"
            )
    runs = []
    for kind, available in per_kind.items():
        entity = SPLITS[kind]["entity"]
        side_dropout = id_dropout
        if side_dropout is None:
            own = float(base.model.get("id_dropout" if entity == "item" else "user_id_dropout", 0))
            side_dropout = own if own > 0 else DEFAULT_ID_DROPOUT
        if subsets is not None:
            available = {n: t for n, t in available.items() if n in subsets or n == REFERENCE}
        for name, subset in available.items():
            for seed in seeds:
                config = copy.deepcopy(base)
                config.seed = int(seed)
                config.progress = False
                config.split = dict(name=SPLIT_NAME, entity=entity, seed=int(seed), **options)
                config.eval.segments = SPLITS[kind]["segments"]
                if name == POPULARITY:
                    config.model = ml_collections.ConfigDict(dict(name=POPULARITY))
                    config.features.schema = None
                else:
                    _apply_towers(config, entity, copy.deepcopy(subset), side_dropout)
                runs.append(dict(split=kind, towers=name, seed=int(seed), config=config))
                if name == "all" and field_dropout > 0:
                    fd_config = copy.deepcopy(config)
                    _apply_towers(
                        fd_config, entity, copy.deepcopy(subset), side_dropout, field_dropout
                    )
                    runs.append(
                        dict(split=kind, towers=_fd_name("all", field_dropout), seed=int(seed),
                             config=fd_config)
                    )  # fmt: skip
                if name == REFERENCE and peer and kind == "cold_items":
                    # LightFM is fitted on this split with the metadata of the config's towers.
                    peer_config = copy.deepcopy(base)
                    peer_config.seed = int(seed)
                    peer_config.progress = False
                    peer_config.split = copy.deepcopy(config.split)
                    peer_config.eval.segments = SPLITS[kind]["segments"]
                    runs.append(dict(split=kind, towers=PEER, seed=int(seed), config=peer_config))
    if warm:
        runs += warm_runs(base, seeds=seeds, field_dropout=field_dropout, peer=peer)
    return runs


def _fd_name(row: str, field_dropout: float) -> str:
    return f"{row}+fd{field_dropout:g}"


def warm_runs(
    base: ml_collections.ConfigDict,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    field_dropout: float = 0.0,
    peer: bool = False,
) -> list[dict[str, Any]]:
    """The warm benchmark's runs: the config on its own split, EASE and LightFM beside it.

    Every row of a seed uses the config's data and split (for ``hybrid.py``, Collie's: ratings
    >= 4, 10% of each user's positives held out with split seed 42; the seed changes the
    models' initialisation only), evaluated on that held-out set as the trainer does.

    Args:
      base: the hybrid config.
      seeds: model seeds.
      field_dropout: if > 0, a ``hybrid+fd<rate>`` row with that field dropout on both sides.
      peer: add the LightFM row.

    Returns:
      Runs as ``ablation_runs`` returns them, split kind ``"standard"``.
    """
    runs = []
    for seed in seeds:
        config = copy.deepcopy(base)
        config.seed = int(seed)
        config.progress = False
        runs.append(dict(split=STANDARD, towers=HYBRID_ROW, seed=int(seed), config=config))
        if field_dropout > 0:
            fd = copy.deepcopy(config)
            fd.model["field_dropout"] = float(field_dropout)
            fd.model["user_field_dropout"] = float(field_dropout)
            runs.append(
                dict(split=STANDARD, towers=_fd_name(HYBRID_ROW, field_dropout), seed=int(seed),
                     config=fd)
            )  # fmt: skip
        ease = copy.deepcopy(config)
        # experiments/configs/ease.py's model; the data, split and evals are the config's.
        ease.model = ml_collections.ConfigDict(dict(name="ease", l2=500.0))
        ease.features.schema = None
        ease.features.user_history = False
        runs.append(dict(split=STANDARD, towers=EASE_ROW, seed=int(seed), config=ease))
        if peer:
            runs.append(dict(split=STANDARD, towers=PEER, seed=int(seed), config=config))
    return runs


def _workdir(out_dir: str, run: Mapping[str, Any]) -> str:
    return os.path.join(out_dir, run["split"], run["towers"], f"seed{run['seed']}")


def _metric_names(metrics: Sequence[str]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``("ndcg@10", "auc")`` -> metric names ``("ndcg", "auc")`` and cut-offs ``(10,)``."""
    names = tuple(dict.fromkeys(m.partition("@")[0] for m in metrics))
    ks = tuple(sorted({int(m.partition("@")[2]) for m in metrics if "@" in m})) or (10,)
    return names, ks


def _post_evaluate(run: Mapping[str, Any], workdir: str) -> None:
    """Adds ``AMONG_COLD`` to an item-cold run's ``per_user.npz``.

    Each user's relevant cold items are ranked among the cold items only
    (``item_segment_candidates="segment"``): how well the model orders cold items, apart from
    how it places them against the warm catalogue (the trainer's ``cold_items``). The trained
    model is restored from the run's last checkpoint (``hybridrec.load``); popularity is refitted
    (in numpy, instantly). A run that has the arrays already is left alone.
    """
    from hybridrec.experiment import prepare_data

    path = os.path.join(workdir, "per_user.npz")
    if not os.path.exists(path):
        raise AblationError(f"{workdir}: no per_user.npz; was it written by an older trainer?")
    arrays = _load_per_user(workdir)
    if run["split"] != "cold_items" or any(AMONG_COLD in k for k in arrays):
        return
    config = run["config"]
    with _split_registered():
        data = prepare_data(config)
    if run["towers"] == PEER:
        raise AblationError(f"{workdir}: a LightFM run is evaluated when it is fitted")
    if run["towers"] == POPULARITY:
        from hybridrec.models.baselines import get_baseline

        score_fn = get_baseline(POPULARITY).fit(data.train).score
    else:
        import hybridrec

        trained = hybridrec.load(workdir)
        raw_ids = trained.user_ids

        def score_fn(user_ids: np.ndarray) -> np.ndarray:
            return trained.score(raw_ids[user_ids])  # (B, num_items)

    arrays.update(_among_cold(config, data, score_fn))
    np.savez_compressed(path, **arrays)


def _among_cold(config: ml_collections.ConfigDict, data: Any, score_fn: Any) -> dict:
    """Per-user ``AMONG_COLD`` arrays of every evaluation split: relevant cold items ranked
    among the cold items only, by ``hybridrec.evaluation.evaluate`` (filtered mode)."""
    from hybridrec import evaluation

    names, ks = _metric_names(METRICS)
    arrays: dict[str, np.ndarray] = {}
    exclude: list[Interactions] = []
    for split_name, test in data.eval_splits.items():
        result = evaluation.evaluate(
            score_fn,
            test,
            train=data.train,
            exclude=exclude,
            ks=ks,
            metrics=names,
            mode="filtered",
            split_name=split_name,
            segments=("cold_items",),
            item_segment_candidates="segment",
            batch_size=int(config.eval.batch_size),
            # The ID-only model and popularity score all cold items alike: each metric is its
            # expectation over the orders of tied items, not one order (see the docstring).
            tie_break="expected",
            seed=int(config.seed),
        )
        prefix = f"{split_name}/cold_items/"
        for name, values in result.per_user.items():
            if name.startswith(prefix):
                key = f"{split_name}/{AMONG_COLD}/{name[len(prefix) :]}"
                arrays[key] = values
                arrays[f"{key}:user_ids"] = result.user_ids[name]
        exclude.append(test)
    return arrays


# --------------------------------------------------------------------------------- the peer
def lightfm_missing() -> str | None:
    """None when LightFM can be imported, else the note that explains its skipped row."""
    try:
        import lightfm  # noqa: F401
    except ImportError as err:
        return (
            f"LightFM row skipped: lightfm is not importable ({err}); install the optional peers "
            "of benchmarks/requirements-peers.txt (pip install numpy scipy wheel && pip install "
            "--no-use-pep517 lightfm==1.17)"
        )
    return None


def lightfm_item_features(
    item_table: Mapping[str, np.ndarray],
    fields: Sequence[str],
    *,
    identity: bool = True,
    normalize: bool = True,
) -> tuple[Any, list[str]]:
    """LightFM's item-feature matrix from hybridrec's encoded item fields.

    Columns: one identity feature per item (LightFM's usual setup; a cold item's stays
    untrained), then, per field, one column per vocabulary entry of its bag encoding
    (``"{field}/ids"``, ``"{field}/weights"``: genres with weight 1, title words with their
    TF-IDF weight, the release year's quantile bucket). Padding and the unknown/missing bucket
    (ids 0 and 1) are left out: in LightFM an entity without a value simply has no feature.

    Args:
      item_table: (num_items, ...) arrays of ``hybridrec.experiment.ExperimentData.item_table``.
      fields: the item fields to use.
      identity: include the identity features.
      normalize: scale each row to sum 1, as ``lightfm.data.Dataset.build_item_features`` does
        by default.

    Returns:
      A (num_items, F) float32 CSR matrix, and notes on the fields left out (no bag encoding).
    """
    import scipy.sparse as sp

    n = len(item_table["ids"])
    blocks = [sp.identity(n, np.float32, format="csr")] if identity else []
    notes = []
    for field in fields:
        ids = item_table.get(f"{field}/ids")
        if ids is None:
            notes.append(f"LightFM: item field {field!r} has no bag encoding; left out")
            continue
        ids = np.asarray(ids)  # (n, W)
        weights = np.asarray(item_table.get(f"{field}/weights", np.ones(ids.shape, np.float32)))
        entry = ids > 1
        rows = np.nonzero(entry)[0]
        block = sp.csr_matrix(
            (weights[entry].astype(np.float32), (rows, ids[entry])),
            shape=(n, int(ids.max(initial=1)) + 1),
        )
        blocks.append(block)
    if not blocks:
        raise AblationError("LightFM: no item features (no identity and no usable field)")
    matrix = sp.hstack(blocks, format="csr").astype(np.float32)
    if normalize:
        sums = np.asarray(matrix.sum(axis=1)).ravel()
        matrix = sp.diags(np.where(sums > 0, 1.0 / np.maximum(sums, 1e-12), 0.0)) @ matrix
    return sp.csr_matrix(matrix, dtype=np.float32), notes


def _item_fields(config: ml_collections.ConfigDict) -> list[str]:
    """The fields read by the config's item metadata towers (what LightFM gets too)."""
    towers = config.model.get("item_towers") or {}
    fields = [_plain(spec).get("field") for spec in towers.values()]
    return list(dict.fromkeys(f for f in fields if f))


def fit_lightfm(
    data: Any,
    fields: Sequence[str],
    *,
    seed: int,
    epochs: int = LIGHTFM_EPOCHS,
    num_threads: int = 2,
    options: Mapping[str, Any] | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Fits LightFM on an ``ExperimentData``'s training positives; returns a score function.

    Users have identity features only; items identity plus ``fields`` (``lightfm_item_features``).

    Returns:
      ``score_fn(user_ids (B,)) -> (B, num_items)`` float32 scores for
      ``hybridrec.evaluation.evaluate``, and facts about the fit (options, fields, notes, time).
    """
    import scipy.sparse as sp
    from lightfm import LightFM

    options = {**LIGHTFM_OPTIONS, **dict(options or {})}
    train = data.train
    shape = (train.num_users, train.num_items)
    matrix = sp.coo_matrix(
        (np.ones(len(train), np.float32), (train.user_ids, train.item_ids)), shape=shape
    ).tocsr()
    matrix.data[:] = 1.0  # a repeated pair is one positive
    item_features, notes = lightfm_item_features(data.item_table, fields)
    model = LightFM(**options, random_state=int(seed))
    t0 = time.time()
    model.fit(matrix.tocoo(), item_features=item_features, epochs=int(epochs),
              num_threads=int(num_threads))  # fmt: skip
    fit_s = time.time() - t0
    item_bias, item_vecs = model.get_item_representations(item_features)
    user_bias, user_vecs = model.get_user_representations()
    item_vecs = np.asarray(item_vecs, np.float32)  # (I, D)
    item_bias = np.asarray(item_bias, np.float32)  # (I,)
    user_vecs = np.asarray(user_vecs, np.float32)  # (U, D)
    user_bias = np.asarray(user_bias, np.float32)  # (U,)

    def score_fn(user_ids: np.ndarray) -> np.ndarray:
        u = np.asarray(user_ids, np.int64)
        return user_vecs[u] @ item_vecs.T + user_bias[u, None] + item_bias[None, :]

    facts = dict(
        options=options,
        epochs=int(epochs),
        fields=list(fields),
        num_features=int(item_features.shape[1]),
        fit_s=fit_s,
        notes=notes,
    )
    return score_fn, facts


def run_peer(
    run: Mapping[str, Any],
    workdir: str,
    *,
    epochs: int = LIGHTFM_EPOCHS,
    num_threads: int = 2,
) -> dict[str, float]:
    """Fits LightFM on the run's data and split and evaluates it as the trainer does.

    Writes ``per_user.npz`` (the trainer's keys: every evaluation split, the run's segments and,
    for the item-cold split, ``AMONG_COLD``), ``metrics.json`` and ``lightfm.json`` (options,
    fields, fit time) into ``workdir``.

    Returns:
      The aggregate metrics.
    """
    import json

    from hybridrec import evaluation
    from hybridrec.experiment import prepare_data

    config = run["config"]
    with _split_registered():
        data = prepare_data(config)
    score_fn, facts = fit_lightfm(
        data, _item_fields(config), seed=int(run["seed"]), epochs=epochs, num_threads=num_threads
    )
    ec = config.eval
    metrics: dict[str, float] = {}
    per_user: dict[str, np.ndarray] = {}
    exclude: list[Interactions] = []
    for split_name, test in data.eval_splits.items():
        # The trainer's evaluation call (hybridrec.train), with the same segments.
        result = evaluation.evaluate(
            score_fn,
            test,
            train=data.train,
            exclude=exclude,
            ks=tuple(ec.ks),
            metrics=tuple(ec.metrics) if ec.get("metrics") else evaluation.DEFAULT_METRICS,
            mode=ec.mode,
            split_name=split_name,
            segments=tuple(SPLITS[run["split"]]["segments"]),
            batch_size=int(ec.batch_size),
        )
        metrics.update({k: float(v) for k, v in result.metrics.items()})
        for name, values in result.per_user.items():
            per_user[name] = values
            per_user[f"{name}:user_ids"] = result.user_ids[name]
        exclude.append(test)
    if run["split"] == "cold_items":
        per_user.update(_among_cold(config, data, score_fn))
    os.makedirs(workdir, exist_ok=True)
    np.savez_compressed(os.path.join(workdir, "per_user.npz"), **per_user)
    with open(os.path.join(workdir, "lightfm.json"), "w") as f:
        json.dump(facts, f, indent=1)
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    return metrics


def run_ablation(
    runs: Sequence[Mapping[str, Any]],
    out_dir: str,
    *,
    log: Any = print,
    lightfm_epochs: int = LIGHTFM_EPOCHS,
    lightfm_threads: int = 2,
) -> list[dict[str, Any]]:
    """Trains and evaluates every run (skipping finished ones); returns them with their workdirs.

    Args:
      runs: from ``ablation_runs``.
      out_dir: the ablation's output directory.
      log: a print-like function for progress lines.
      lightfm_epochs, lightfm_threads: the LightFM runs' training budget and threads.

    Returns:
      The runs, each with ``"workdir"`` added.
    """
    from hybridrec.train import train_and_evaluate

    done = []
    for i, run in enumerate(runs):
        workdir = _workdir(out_dir, run)
        label = f"[{i + 1}/{len(runs)}] {run['split']} / {run['towers']} / seed {run['seed']}"
        t0 = time.time()
        if os.path.exists(os.path.join(workdir, "metrics.json")):
            log(f"{label}: trained already ({workdir})")
            metrics = None
        else:
            if run["towers"] == PEER:
                metrics = run_peer(run, workdir, epochs=lightfm_epochs, num_threads=lightfm_threads)
            else:
                with _split_registered():
                    metrics = train_and_evaluate(run["config"], workdir)
        if run["towers"] != PEER:
            _post_evaluate(run, workdir)
        if metrics is not None:
            log(f"{label}: {time.time() - t0:.0f} s, {_progress_metrics(run, metrics, workdir)}")
        done.append({**run, "workdir": workdir})
    return done


def _progress_metrics(run: Mapping[str, Any], metrics: Mapping[str, float], workdir: str) -> dict:
    """The NDCG@10 figures of a finished run for its progress line: the split's first segment
    (for cold items, ranked against the whole catalogue, where they rarely reach a top 10) and,
    on the item-cold split, the cold items ranked among cold items, the table's headline."""
    segments = SPLITS[run["split"]]["segments"]
    tail = f"/{segments[0]}/ndcg@10" if segments else "/ndcg@10"
    shown = {
        k: round(v, 4)
        for k, v in metrics.items()
        if k.endswith(tail) and k.count("/") == tail.count("/")
    }
    among = {
        k: round(float(np.nanmean(v)), 4)
        for k, v in _load_per_user(workdir).items()
        if k.endswith(f"/{AMONG_COLD}/ndcg@10")
    }
    return {**shown, **among}


# --------------------------------------------------------------------------------- statistics
def _load_per_user(workdir: str) -> dict[str, np.ndarray]:
    with np.load(os.path.join(workdir, "per_user.npz")) as f:
        return {k: f[k] for k in f.files}


def _eval_split(per_user: Mapping[str, np.ndarray]) -> str:
    # The cold-and-warm split has a test part; without validation the trainer calls it "val".
    return "test" if any(k.startswith("test/") for k in per_user) else "val"


def summarize(
    runs: Sequence[Mapping[str, Any]],
    *,
    metrics: Sequence[str] = METRICS,
    reference: str = REFERENCE,
    confidence: float = CONFIDENCE,
) -> pd.DataFrame:
    """Pools the per-user results of the runs over seeds and tests every subset against ``ids``.

    Args:
      runs: dicts with ``split``, ``towers``, ``seed`` and either ``workdir`` (holding
        ``per_user.npz``) or ``per_user`` (its arrays: ``{"test/cold_items/ndcg@10": (U,),
        "test/cold_items/ndcg@10:user_ids": (U,), ...}``).
      metrics: metric names without split or segment (``ndcg@10``).
      reference: the subset the others are compared with.
      confidence: level of the intervals.

    Returns:
      A long DataFrame, one row per (split, towers, segment, metric), in run order, with
      ``mean``, ``ci_low``, ``ci_high`` (Student-t over the pooled (seed, user) values),
      ``seed_sd`` (standard deviation of the per-seed means; NaN for one seed), ``num_seeds``,
      ``num_users`` ((seed, user) pairs), and against the reference ``diff`` (this minus
      reference, over the pairs both evaluated), ``diff_ci_low``, ``diff_ci_high`` (bootstrap)
      and ``p_value`` (paired t-test); NaN for the reference itself.
    """
    from hybridrec.evaluation import EvalResult, confidence_interval, paired_test

    # (split, towers, segment, metric) -> list of (seed, user_ids, values)
    pooled: dict[tuple[str, str, str, str], list[tuple[int, np.ndarray, np.ndarray]]] = {}
    order: list[tuple[str, str]] = []
    for run in runs:
        per_user = run.get("per_user")
        if per_user is None:
            per_user = _load_per_user(run["workdir"])
        prefix = _eval_split(per_user)
        key = (run["split"], run["towers"])
        if key not in order:
            order.append(key)
        for segment in SPLITS[run["split"]]["reported"]:
            for metric in metrics:
                name = f"{prefix}/{metric}" if segment == "all" else f"{prefix}/{segment}/{metric}"
                if name not in per_user:
                    continue  # no user of this seed has a test item in the segment
                ids = np.asarray(per_user[f"{name}:user_ids"], np.int64)
                # A unit is a (seed, user) pair: the seed goes in the high bits of the ID.
                unit = (np.int64(run["seed"]) << np.int64(32)) | ids
                entry = (int(run["seed"]), unit, np.asarray(per_user[name], np.float64))
                pooled.setdefault((*key, segment, metric), []).append(entry)

    def result_of(entries):
        unit = np.concatenate([e[1] for e in entries])
        values = np.concatenate([e[2] for e in entries])
        sort = np.argsort(unit)
        return EvalResult(metrics={}, per_user={"m": values[sort]}, user_ids={"m": unit[sort]})

    rows = []
    for split_kind, towers in order:
        for segment in SPLITS[split_kind]["reported"]:
            for metric in metrics:
                entries = pooled.get((split_kind, towers, segment, metric))
                if not entries:
                    continue
                values = np.concatenate([e[2] for e in entries])
                mean, low, high = confidence_interval(values, confidence=confidence)
                seed_means = [float(e[2].mean()) for e in entries]
                row = dict(
                    split=split_kind,
                    towers=towers,
                    segment=segment,
                    metric=metric,
                    mean=mean,
                    ci_low=low,
                    ci_high=high,
                    seed_sd=float(np.std(seed_means, ddof=1)) if len(entries) > 1 else math.nan,
                    num_seeds=len(entries),
                    num_users=len(values),
                    diff=math.nan,
                    diff_ci_low=math.nan,
                    diff_ci_high=math.nan,
                    p_value=math.nan,
                )
                ref = pooled.get((split_kind, reference, segment, metric))
                if towers != reference and ref:
                    test = paired_test(
                        result_of(ref), result_of(entries), "m", confidence=confidence
                    )
                    row.update(
                        diff=test.mean_difference,
                        diff_ci_low=test.ci_low,
                        diff_ci_high=test.ci_high,
                        p_value=test.p_value,
                    )
                rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------- report
def _p_text(p: float) -> str:
    if math.isnan(p):
        return ""
    return "p<1e-4" if p < 1e-4 else f"p={p:.2g}"


def to_markdown(
    table: pd.DataFrame, *, metrics: Sequence[str] = METRICS, reference: str = REFERENCE
) -> str:
    """The ablation as markdown: one table per split, a row per (towers, segment).

    Each metric cell is ``mean [ci_low, ci_high]``; each ``Δ`` cell the difference from the
    reference row over the same (seed, user) pairs with its paired-test p-value, bold when
    p < 0.05.

    Args:
      table: the output of ``summarize``.
      metrics: the metric columns.
      reference: the row ``table`` was compared with (``summarize(reference=...)``).

    Returns:
      Markdown text ending with a newline.
    """
    lines = []
    for split_kind, part in table.groupby("split", sort=False):
        level = f"{CONFIDENCE:.0%}"
        where = "whole held-out set" if split_kind == STANDARD else "test part"
        lines += [
            f"### {split_kind} split ({where}; mean [{level} CI] over seeds x users)",
            "",
            "| towers | segment | "
            + " | ".join(metrics)
            + " | "
            + " | ".join(f"Δ{m} vs {reference}" for m in metrics)
            + " | seeds | users |",
            "|:---|:---|" + "---:|" * (2 * len(metrics) + 2),
        ]
        for (towers, segment), rows in part.groupby(["towers", "segment"], sort=False):
            by_metric = {r.metric: r for r in rows.itertuples()}
            cells, deltas = [], []
            for m in metrics:
                r = by_metric.get(m)
                if r is None:
                    cells.append("—")
                    deltas.append("")
                    continue
                cells.append(f"{r.mean:.4f} [{r.ci_low:.4f}, {r.ci_high:.4f}]")
                if math.isnan(r.diff):
                    deltas.append("")
                else:
                    text = f"{r.diff:+.4f} ({_p_text(r.p_value)})"
                    deltas.append(f"**{text}**" if r.p_value < 0.05 else text)
            first = next(iter(by_metric.values()))
            lines.append(
                f"| {towers} | {segment} | "
                + " | ".join(cells)
                + " | "
                + " | ".join(deltas)
                + f" | {first.num_seeds} | {first.num_users} |"
            )
        lines.append("")
    return "\n".join(lines)


def write_report(
    table: pd.DataFrame,
    out_dir: str,
    *,
    metrics: Sequence[str] = METRICS,
    hparams: Mapping[str, Any] | None = None,
    peer_table: pd.DataFrame | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """Writes ``ablation.md``, ``ablation.csv``, the bar charts and the TensorBoard summary.

    Args:
      table: the output of ``summarize``.
      out_dir: the ablation's output directory.
      metrics: the metrics to tabulate and plot.
      hparams: extra hyperparameters for the TensorBoard summary runs (e.g. the config name).
      peer_table: ``summarize(..., reference="lightfm")``: its tables are added to
        ``ablation.md`` and written to ``ablation_vs_lightfm.csv``.
      notes: lines added under the tables (e.g. why the LightFM row is missing).

    Returns:
      ``{"markdown": path, "csv": path, "plots": [paths], "summary": dir}`` (and
      ``"peer_csv"`` with a peer table).
    """
    from hybridrec.logging import MetricWriter
    from hybridrec.plots import plot_ablation

    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, "ablation.md")
    text = "# Cold-start ablation\n\n## Against the ID-only model\n\n" + to_markdown(
        table, metrics=metrics
    )
    if peer_table is not None:
        text += f"\n## Against {PEER} (same split, same evaluator)\n\n" + to_markdown(
            peer_table, metrics=metrics, reference=PEER
        )
    if notes:
        text += "\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    with open(md_path, "w") as f:
        f.write(text)
    csv_path = os.path.join(out_dir, "ablation.csv")
    table.to_csv(csv_path, index=False)
    extra = {}
    if peer_table is not None:
        extra["peer_csv"] = os.path.join(out_dir, f"ablation_vs_{PEER}.csv")
        peer_table.to_csv(extra["peer_csv"], index=False)

    plots = []
    for split_kind, part in table.groupby("split", sort=False):
        for metric in metrics:
            rows = part[part["metric"] == metric]
            if rows.empty:
                continue
            path = os.path.join(out_dir, f"ablation_{split_kind}_{metric.replace('@', '_at_')}.png")
            plot_ablation(
                rows,
                path,
                metric=metric,
                group="towers",
                hue="segment",
                ci_level=CONFIDENCE,
                title=f"{split_kind} split: test {metric} ({CONFIDENCE:.0%} CI)",
            )
            plots.append(path)

    # One TensorBoard run per (split, towers), with the pooled means as scalars and the subset as
    # hyperparameters, beside the individual runs' own event files.
    summary_dir = os.path.join(out_dir, "summary")
    for (split_kind, towers), rows in table.groupby(["split", "towers"], sort=False):
        scalars = {}
        for r in rows.itertuples():
            scalars[f"{r.segment}/{r.metric}"] = r.mean
            if not math.isnan(r.diff):
                scalars[f"{r.segment}/{r.metric}_diff_vs_{REFERENCE}"] = r.diff
        with MetricWriter(os.path.join(summary_dir, f"{split_kind}-{towers}")) as writer:
            writer.write_hparams(
                {
                    "split": split_kind,
                    "towers": towers,
                    "num_seeds": int(rows["num_seeds"].max()),
                    **dict(hparams or {}),
                },
                metric_tags=sorted(scalars),
            )
            writer.write_scalars(0, scalars)
    return dict(markdown=md_path, csv=csv_path, plots=plots, summary=summary_dir, **extra)


# --------------------------------------------------------------------------------- command line
def load_config(spec: str, *, smoke: bool = False) -> ml_collections.ConfigDict:
    """Loads ``NAME[.py][:arg]`` (a path, or a name under ``experiments/configs/``).

    Args:
      spec: e.g. ``"hybrid.py"``, ``"beer_hybrid.py:cold"`` or a path to a config file.
      smoke: add the ``smoke`` variant to ``arg``.

    Returns:
      The config (unlocked).
    """
    from experiments.run import _resolve

    try:
        resolved = _resolve(spec)
    except SystemExit as err:  # the runner reports an unknown config by exiting
        raise AblationError(str(err).removeprefix("error: ")) from None
    path, _, arg = resolved.partition(":")
    if smoke:
        arg = ",".join(a for a in (arg, "smoke") if a)
    module_spec = importlib.util.spec_from_file_location("_cold_start_config", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.get_config(arg or None)


def _parse_list(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status (2 for a bad argument)."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.cold_start",
        description="Cold-start ablation of a hybrid config's towers (see the module docstring).",
    )
    parser.add_argument("--config", default="hybrid.py", help="config NAME[.py][:arg] or path")
    parser.add_argument(
        "--seeds", type=int, default=None, help="number of seeds (default 3; 2 with --smoke)"
    )
    parser.add_argument(
        "--out", default=None, help="output directory (default runs/cold_start-<time>)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="the config's smoke variant (tiny synthetic data)"
    )
    parser.add_argument(
        "--splits", default=None, help="comma-separated: cold_items,cold_users (default both)"
    )
    parser.add_argument(
        "--subsets", default=None, help="comma-separated tower subsets (default all)"
    )
    parser.add_argument(
        "--id-dropout",
        type=float,
        default=None,
        help="cold-side ID dropout of ID+metadata runs (default: the config's own when above 0, "
        f"else {DEFAULT_ID_DROPOUT})",
    )
    parser.add_argument(
        "--field-dropout",
        type=float,
        default=0.0,
        help="if > 0, add all+fd<rate> (and hybrid+fd<rate> with --warm) rows with that field "
        "dropout on both sides",
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="add the warm benchmark: the config on its own split, EASE, LightFM",
    )
    parser.add_argument("--no-peer", action="store_true", help="leave the LightFM row out")
    parser.add_argument(
        "--lightfm-epochs", type=int, default=LIGHTFM_EPOCHS, help="LightFM's training epochs"
    )
    parser.add_argument("--lightfm-threads", type=int, default=2, help="LightFM's threads")
    args = parser.parse_args(argv)

    num_seeds = args.seeds if args.seeds is not None else (2 if args.smoke else 3)
    if num_seeds < 1:
        parser.error(f"--seeds must be >= 1, got {num_seeds}")
    if args.id_dropout is not None and not 0.0 <= args.id_dropout < 1.0:
        parser.error(f"--id-dropout must be in [0, 1), got {args.id_dropout}")
    if not 0.0 <= args.field_dropout < 1.0:
        parser.error(f"--field-dropout must be in [0, 1), got {args.field_dropout}")
    if args.lightfm_epochs < 1:
        parser.error(f"--lightfm-epochs must be >= 1, got {args.lightfm_epochs}")
    notes = []
    missing = None if args.no_peer else lightfm_missing()
    if missing:
        notes.append(missing)
        print(missing, file=sys.stderr, flush=True)
    peer = not args.no_peer and missing is None
    out_dir = args.out or os.path.join("runs", f"cold_start-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        config = load_config(args.config, smoke=args.smoke)
        runs = ablation_runs(
            config,
            seeds=range(num_seeds),
            split_kinds=_parse_list(args.splits) or COLD_SPLITS,
            subsets=_parse_list(args.subsets),
            id_dropout=args.id_dropout,
            field_dropout=args.field_dropout,
            peer=peer,
            warm=args.warm,
        )
    except (AblationError, ValueError) as err:
        parser.error(str(err))
    print(f"cold-start ablation: {len(runs)} runs into {out_dir}", flush=True)
    t0 = time.time()
    done = run_ablation(
        runs, out_dir, lightfm_epochs=args.lightfm_epochs, lightfm_threads=args.lightfm_threads
    )
    table = summarize(done)
    peer_table = summarize(done, reference=PEER) if peer else None
    paths = write_report(
        table,
        out_dir,
        hparams={
            "config": args.config,
            "id_dropout": "config" if args.id_dropout is None else args.id_dropout,
            "field_dropout": args.field_dropout,
        },
        peer_table=peer_table,
        notes=notes,
    )
    sys.stdout.write("\n" + to_markdown(table))
    if peer_table is not None:
        sys.stdout.write("\n" + to_markdown(peer_table, reference=PEER))
    for note in notes:
        print(f"note: {note}")
    print(
        f"wrote {paths['markdown']}, {paths['csv']}, {len(paths['plots'])} plots, "
        f"{paths['summary']}/ in {time.time() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
