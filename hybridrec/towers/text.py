"""Text tower: a TF-IDF-weighted bag of token embeddings.

Reads ``"{field}/ids"`` (B, W) token IDs (0 = padding, 1 = unknown token) and
``"{field}/weights"`` (B, W) TF-IDF weights from the side-features encoder. With the default
``pooling="sum"`` the output is ``sum_w tfidf_w * e_token_w``: the encoder's weights (for
example scikit-learn's L2-normalised TF-IDF) are used as they are; ``pooling="mean"`` divides by
the sum of weights instead.
"""

from __future__ import annotations

import numpy as np

from hybridrec.towers.categorical import CategoricalTower, example_bag


class TextTower(CategoricalTower):
    """TF-IDF-weighted embedding bag over a text field's tokens.

    Args:
      field: name of the field (batch keys ``"{field}/ids"`` and ``"{field}/weights"``).
      features_info: the field's metadata; needs ``vocab_size`` (tokens incl. padding, unknown).
      output_dim: embedding width D.
      rngs: ``nnx.Rngs`` with a ``params`` stream.
      pooling: ``"sum"`` (default), ``"mean"`` or ``"sqrtn"``.
      init_stddev: the table is initialised from N(0, init_stddev^2); row 0 (padding) is zero.
    """

    kind = "text"
    default_pooling = "sum"


Tower = TextTower


def example(batch_size: int, rng: np.random.Generator) -> tuple[dict, dict]:
    """Constructor arguments and a matching batch (random TF-IDF weights) for the contract test."""
    info = dict(kind="text", vocab_size=6, width=5)
    kwargs = dict(field="title", features_info=info, output_dim=8)
    ids, weights = example_bag(batch_size, rng, vocab_size=6, width=5, tfidf=True)
    return kwargs, {"title/ids": ids, "title/weights": weights}
