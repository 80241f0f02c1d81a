"""Helpers shared by the experiment configs: variant parsing and the ``smoke`` variant.

Not a config (the leading underscore keeps it out of the runner's list and the config tests).

A config's ``arg`` (the part after ``:`` in ``--config ncf.py:smoke``) may name several
variants separated by commas, e.g. ``mf_adaptive.py:hinge,smoke``; ``variants`` checks them
against the names the config knows, so a misspelt variant fails with the list of known ones.
"""

from __future__ import annotations

from collections.abc import Iterable

import ml_collections

from experiments.configs import hybrid

# Models the trainer fits in numpy (``hybridrec.train.BASELINES``; not imported, so that loading
# a config does not import JAX): the smoke settings of neural models do not apply to them.
_BASELINES = ("popularity", "itemknn", "ease")

# The synthetic flavour behind each real dataset, and its feature schema.
_FLAVOUR_SCHEMAS = {
    "movies": "synthetic-movies",
    "beer": "synthetic-beer",
    "products": "synthetic-products",
    "plain": "synthetic-plain",
}


def variants(arg: str | None, known: Iterable[str], config_name: str) -> set[str]:
    """The variants named by ``arg`` (comma-separated; None or "" for none).

    Args:
      arg: the config argument, e.g. ``"hinge,smoke"``.
      known: the variants this config understands (``"smoke"`` is always one).
      config_name: the config file's name, for the error message.

    Returns:
      The set of requested variant names.

    Raises:
      ValueError: a name not in ``known``; the message lists the known ones.
    """
    known = set(known) | {"smoke"}
    asked = {part.strip() for part in (arg or "").split(",") if part.strip()}
    unknown = sorted(asked - known)
    if unknown:
        raise ValueError(
            f"unknown variant(s) {unknown} of {config_name}; known: {', '.join(sorted(known))}"
        )
    return asked


def smoke(
    config: ml_collections.ConfigDict,
    *,
    flavour: str = "movies",
    features: bool = True,
    **synthetic: object,
) -> None:
    """Turns ``config`` into its smoke variant: tiny synthetic data, two epochs, in seconds.

    Applies ``hybrid.smoke`` (the shared smoke settings) and then picks the synthetic flavour
    the config's towers expect.

    Args:
      config: the full config, modified in place (call this last, after every other change).
      flavour: the synthetic flavour (``movies``, ``beer``, ``products``, ``plain``).
      features: keep a feature schema (the flavour's); False for ID-only models.
      **synthetic: overrides of ``config.data.synthetic`` (e.g. ``explicit=True``).
    """
    baseline = config.model.name in _BASELINES
    model = config.model.to_dict() if baseline else None
    hybrid.smoke(config)
    if baseline:  # hybrid.smoke sets a neural model's embedding_dim
        config.model = ml_collections.ConfigDict(model)
    if flavour != "movies" or synthetic:
        spec = dict(config.data.synthetic)
        spec.update(flavour=flavour, **synthetic)
        if flavour == "products":
            # Products are item pairs: "users" are the query products, one ID space.
            spec.pop("num_users", None)
            spec["num_interactions"] = 300
        config.data.synthetic = spec
    config.features.schema = _FLAVOUR_SCHEMAS[flavour] if features else None


def untuned_hybrid_training(config: ml_collections.ConfigDict) -> None:
    """The training settings hybrid.py had before its MovieLens tuning, which the configs
    derived from it (beer, item pairs, LightFM-style, two-tower) were measured with: dimension
    32, the title and Freebase towers, the year as a number, no feature biases, no history
    tower, ID dropout 0.1, the pairwise objective with adaptive hinge over 10 negatives (no
    loss options, no user weighting), 20 epochs, a constant learning rate with
    reduce-on-plateau."""
    config.features.user_history = False
    del config.model.user_towers["history"]
    config.model.id_dropout = 0.1
    # hybrid.py's item towers and objective before issue 11 (title words, the year as a number,
    # no feature biases; the pairwise objective alone).
    config.model.item_towers = dict(
        id=dict(tower="ids"),
        genres=dict(tower="categorical", field="genres", pooling="mean"),
        year=dict(tower="numeric", field="release_year"),
        title=dict(tower="text", field="title"),
    )
    config.train.objective = None
    del config.train["softmax"]
    del config.train["prior"]  # hybrid.py's cold-item prior (issue 11) came after
    config.train.loss = "adaptive_hinge"
    config.train.loss_options = dict()  # hybrid.py's blended BPR weight (2026-12-08) came after
    config.train.user_weighting = 0.0  # so did its user-balanced weights (2026-12-07)
    config.model.embedding_dim = 32
    config.model.item_towers.freebase = dict(tower="text", field="freebase")
    config.train.num_negatives = 10
    config.train.num_epochs = 20
    config.optimizer.schedule = dict(name="constant")
    config.optimizer.embeddings.name = "adam"  # hybrid.py's weight decay came after
    del config.optimizer.embeddings["weight_decay"]
    config.optimizer.plateau = dict(metric="val/collie_map@10", mode="max", factor=0.1, patience=1)
