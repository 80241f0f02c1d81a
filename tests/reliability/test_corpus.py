"""Every case of the reliability corpus: bad files fail with hybridrec's own, precise error;
valid-but-tricky files load with the right values (issue 12).

A bad case must raise its ``DataError`` subclass (or ``SplitError`` for a bring-your-own split),
never a library exception, with a message naming the file (its full path), the line or column,
and the bad value. A valid case must load, pass its value check, and give the warnings it
promises for what the loader dropped, merged or coerced.
"""

from __future__ import annotations

import warnings
from collections import Counter

import make_corpus
import pytest
from make_corpus import CASES

from hybridrec.data.datasets._base import DataError, DataWarning
from hybridrec.data.splits import SplitError, SplitWarning

BAD = [c for c in CASES if c.error is not None]
VALID = [c for c in CASES if c.error is None]


def test_the_corpus_is_large_and_covers_every_format_and_class():
    assert len(CASES) >= 100
    formats = Counter(c.fmt for c in CASES)
    assert set(formats) == {"grouplens", "recbole", "beer", "amazon", "files"}
    kinds = Counter(c.kind for c in CASES)
    for kind in ("misses-problem", "silent", "raw-exception", "no-file-name", "valid-mishandled"):
        assert kinds[kind] >= 2, kind
    # Compressed and Parquet inputs are part of it.
    names = " ".join(c.name for c in CASES)
    assert "gzip" in names and "parquet" in names


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.name)
def test_bad_input_raises_a_precise_data_error(corpus, case):
    root, thunks = corpus
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(Exception) as info:  # noqa: PT011 -- the type is checked below
            thunks[case.name]()
    err = info.value
    assert type(err) is case.error or isinstance(err, case.error), (
        f"{case.name}: expected {case.error.__name__}, got {type(err).__name__}: {err}"
    )
    assert isinstance(err, DataError | SplitError), f"{case.name}: {type(err).__name__} escaped"
    message = str(err)
    if case.names_file:
        assert str(make_corpus.case_dir(root, case)) in message, f"{case.name}: {message}"
    for part in case.contains:
        assert part in message, f"{case.name}: {part!r} not in {message!r}"


@pytest.mark.parametrize("case", VALID, ids=lambda c: c.name)
def test_valid_input_loads_with_the_right_values(corpus, case):
    _, thunks = corpus
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = thunks[case.name]()
    case.check(result)
    messages = [
        str(w.message) for w in caught if issubclass(w.category, DataWarning | SplitWarning)
    ]
    if case.warns is not None:
        assert any(case.warns in m for m in messages), f"{case.name}: {messages}"
        # What is warned about is also recorded for the run directory.
        dataset = result[0] if isinstance(result, tuple) else result
        assert any(case.warns in w for w in dataset.info.get("warnings", [])) or (
            any(case.warns in m for m in messages if "split_from_column" in m)
        ), dataset.info.get("warnings")
