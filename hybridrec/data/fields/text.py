"""Text fields: a string (title, description, Freebase ``relation=entity`` tokens) per entity.

Turned into TF-IDF weighted tokens by scikit-learn's ``TfidfVectorizer`` fitted on the training
entities. Output: a bag ``"{name}/ids"`` (n, W) of the ``W`` highest-weighted tokens,
``"{name}/weights"`` their TF-IDF weights exactly as scikit-learn computes them (L2-normalised
over *all* tokens of the entity by default, not renormalised after truncation), and
``"{name}/lengths"``. An entity without any vocabulary token gets the single entry (id 1, 1.0).
The field may join several columns (``column=("title", "description")``) with a space.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer

from hybridrec.data.fields._base import (
    FIRST_VALUE_ID,
    FeatureError,
    FieldEncoder,
    FieldExample,
    check_width,
    is_missing_scalar,
    pack_bag,
    row_desc,
)


class Encoder(FieldEncoder):
    """A fitted ``TfidfVectorizer`` plus the bag width.

    Options:
      width: bag width ``W``; default the most tokens of a training entity, at most
        ``max_width``.
      max_width: cap on the default width.
      max_features, min_df, max_df, ngram_range, sublinear_tf, norm, lowercase, token_pattern,
        stop_words: passed to ``sklearn.feature_extraction.text.TfidfVectorizer``.
    """

    max_columns = None

    def __init__(
        self,
        *,
        name: str,
        entity: str,
        columns: tuple[str, ...],
        kind: str,
        width: int | None = None,
        max_width: int = 256,
        max_features: int | None = 20_000,
        min_df: int | float = 1,
        max_df: int | float = 1.0,
        ngram_range: tuple[int, int] = (1, 1),
        sublinear_tf: bool = True,
        norm: str | None = "l2",
        lowercase: bool = True,
        token_pattern: str = r"(?u)\b\w\w+\b",
        stop_words: str | None = None,
    ):
        super().__init__(name=name, entity=entity, columns=columns, kind=kind)
        where = self.spec_where
        check_width(where, width, max_width)
        lo, hi = tuple(ngram_range)
        if not 1 <= lo <= hi:
            raise FeatureError(
                f"{where}: ngram_range must be (min_n, max_n) with 1 <= min_n <= max_n"
            )
        if norm not in ("l1", "l2", None):
            raise FeatureError(f"{where}: norm must be 'l1', 'l2' or None, got {norm!r}")
        self.spec_width = width
        self.max_width = int(max_width)
        self.params: dict[str, Any] = {
            "lowercase": lowercase,
            "token_pattern": token_pattern,
            "ngram_range": [int(lo), int(hi)],
            "min_df": min_df,
            "max_df": max_df,
            "max_features": max_features,
            "sublinear_tf": sublinear_tf,
            "norm": norm,
            "stop_words": stop_words,
            "use_idf": True,
            "smooth_idf": True,
        }
        self.vectorizer: TfidfVectorizer | None = None
        self.vocabulary: list[str] = []
        self.width = 0

    def texts(self, frame: pd.DataFrame) -> np.ndarray:
        """(n,) object array of strings, the columns joined by a space ("" when missing)."""
        parts = []
        for column in self.columns:
            series = frame[column]
            inferred = pd.api.types.infer_dtype(series, skipna=True)
            if inferred in ("string", "empty"):
                text = series.to_numpy(dtype=object, na_value="")
            else:

                def as_text(v):
                    if isinstance(v, str):
                        return v
                    if is_missing_scalar(v):
                        return ""
                    if isinstance(v, (list, tuple, np.ndarray)) and all(
                        isinstance(t, str) for t in v
                    ):
                        return " ".join(v)  # a bag of tokens, e.g. Freebase entities
                    raise TypeError

                vals = series.to_numpy(dtype=object)
                text = np.empty(len(vals), dtype=object)
                for i, v in enumerate(vals):  # one call per entity
                    try:
                        text[i] = as_text(v)
                    except TypeError:
                        raise FeatureError(
                            f"{self.where(column)}: {row_desc(series.index, i)} holds "
                            f"{type(v).__name__} {v!r}; a text field takes a string, a list of "
                            "strings, '' or None"
                        ) from None
            parts.append(text)
        if len(parts) == 1:
            return parts[0]
        joined = pd.Series(parts[0], dtype=object)
        for part in parts[1:]:  # object concatenation: no fixed-width copy of long descriptions
            joined = joined + " " + pd.Series(part, dtype=object)
        return joined.to_numpy(dtype=object)

    def _make(self, vocabulary: Mapping[str, int] | None = None) -> TfidfVectorizer:
        params = dict(self.params, ngram_range=tuple(self.params["ngram_range"]))
        return TfidfVectorizer(**params, vocabulary=vocabulary, dtype=np.float64)

    def fit(self, frame: pd.DataFrame, interactions: Any = None) -> dict[str, Any]:
        """Fits the vectorizer on the training rows; returns their transform stats."""
        texts = self.texts(frame)
        vectorizer = self._make()
        try:
            matrix = sp.csr_matrix(vectorizer.fit_transform(texts))
        except ValueError as err:  # sklearn: "empty vocabulary" / "no terms remain"
            raise FeatureError(
                f"{self.where()}: empty vocabulary from {len(texts)} training {self.entity}s "
                f"({int((texts == '').sum())} with empty text): {err}"
            ) from None
        # The pruned-terms set is only for introspection and can be huge.
        if hasattr(vectorizer, "stop_words_"):
            del vectorizer.stop_words_
        self._set(vectorizer)
        matrix.eliminate_zeros()
        if self.spec_width is not None:
            self.width = int(self.spec_width)
        else:
            widest = int(np.diff(matrix.indptr).max(initial=1))
            self.width = min(max(1, widest), self.max_width)
        return self._encode(matrix, texts)[1]

    def _set(self, vectorizer: TfidfVectorizer) -> None:
        self.vectorizer = vectorizer
        vocab = vectorizer.vocabulary_
        terms = np.empty(len(vocab), dtype=object)
        terms[list(vocab.values())] = list(vocab.keys())
        self.vocabulary = [str(t) for t in terms]

    def matrix(self, frame: pd.DataFrame) -> tuple[sp.csr_matrix, np.ndarray]:
        """(n, V) CSR TF-IDF matrix of the entities and their (n,) raw texts."""
        texts = self.texts(frame)
        matrix = sp.csr_matrix(self.vectorizer.transform(texts))
        matrix.eliminate_zeros()
        return matrix, texts

    def transform(self, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The bag arrays of ``frame``'s rows and their stats (``empty``, ``mass_cut``...)."""
        return self._encode(*self.matrix(frame))

    def _encode(
        self, matrix: sp.csr_matrix, texts: np.ndarray
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Top-``width`` tokens per row of a TF-IDF matrix, and the stats."""
        n = matrix.shape[0]
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(matrix.indptr))
        # Highest weight first within each row; ties broken by vocabulary index (deterministic).
        order = np.lexsort((matrix.indices, -matrix.data, rows))
        rows, cols, weights = rows[order], matrix.indices[order], matrix.data[order]
        ids, out_w, lengths, fits = pack_bag(
            rows, cols.astype(np.int64) + FIRST_VALUE_ID, weights, n, self.width
        )
        total = float(weights.sum())
        cut = float(weights[~fits].sum())
        stats = {
            "missing": int(pd.Series(texts, dtype=object).str.strip().eq("").sum()),
            "unknown": 0,
            "empty": int((np.diff(matrix.indptr) == 0).sum()),
            "truncated": int(len(np.unique(rows[~fits]))),
            "mass_cut": cut / total if total > 0 else 0.0,
            "mean_length": float(np.diff(matrix.indptr).mean()) if n else 0.0,
        }
        return self.bag_arrays(ids, out_w, lengths), stats

    def info(self):
        """Bag of width W over the token vocabulary plus padding and unknown."""
        return self.field_info(vocab_size=len(self.vocabulary) + FIRST_VALUE_ID, width=self.width)

    def state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Vocabulary, width and vectorizer parameters (JSON); ``idf_`` (array)."""
        state = {
            "vocabulary": self.vocabulary,
            "width": self.width,
            "vectorizer": {**self.params, "sklearn_version": sklearn.__version__},
        }
        return state, {"idf": np.asarray(self.vectorizer.idf_, np.float64)}

    def load_state(self, state: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Rebuilds the vectorizer from its parameters, vocabulary and ``idf_`` (bit-identical)."""
        params = dict(state["vectorizer"])
        params.pop("sklearn_version", None)
        self.params = params
        self.width = int(state["width"])
        vocabulary = {str(t): i for i, t in enumerate(state["vocabulary"])}
        vectorizer = self._make(vocabulary)
        vectorizer.idf_ = np.asarray(arrays["idf"], np.float64)
        self._set(vectorizer)

    def describe(self, stats: Mapping[str, Any], n: int) -> tuple[str, str, list[str]]:
        """Coverage-table cells: vocabulary size, share in vocabulary, tokens, mass cut."""
        in_vocab = 1.0 - stats["empty"] / n if n else 0.0
        notes = [
            f"in vocab {in_vocab:.1%}",
            f"mean {stats['mean_length']:.1f} tokens",
            f"mass cut {stats['mass_cut']:.1%}",
        ]
        return "text (TF-IDF)", f"{len(self.vocabulary):,}", notes


def example(rng: np.random.Generator) -> FieldExample:
    """Titles over a small vocabulary; test rows with unseen words only and missing text."""
    words = "red green blue dark light night day sun moon star".split()
    train = pd.DataFrame(
        {"title": [" ".join(rng.choice(words, size=rng.integers(1, 5))) for _ in range(15)]}
    )
    train.loc[0, "title"] = " ".join(words)  # every word seen
    test = pd.DataFrame({"title": ["red moon", "zebra quokka", None, "", "star star sun"]})
    return FieldExample(
        options=dict(column="title"),
        train=train,
        test=test,
        missing=[2, 3],
        unseen=[1],
        expected={1: {"f/lengths": 1}, 2: {"f/lengths": 1}},  # the single unknown entry
    )
