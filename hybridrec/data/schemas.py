"""Feature schemas of the bundled datasets: which metadata columns become which side features.

Each schema lists ``FieldSpec`` s (see ``hybridrec.data.features``) over the metadata columns
that the dataset loaders produce (column conventions in ``hybridrec.data.datasets._base``).
The synthetic flavours (``make_synthetic(flavour=...)``, dataset names ``synthetic-movies``,
``synthetic-beer``, ``synthetic-products``) use the same columns as the real datasets they
mirror, and so the same schemas; ``synthetic-plain`` has its own minimal one.

For the item-pair task (Amazon products and ``synthetic-products``) the "users" are query
products with the same IDs as the items and no user metadata: encode them with the item fields,
``encoder.transform("item", dataset.item_metadata, id_map=dataset.interactions.user_map)``.

Choices shared by all schemas:

* high-cardinality categorical fields (breweries, brands, product categories) use
  ``min_count=2``: values seen in a single training entity map to the unknown bucket, so the
  unknown embedding is trained on real rare values and is meaningful for cold-start entities
  whose value was never seen;
* text fields use ``min_df=2`` for the same reason (a token of one training entity cannot
  generalise) and sublinear TF;
* numeric fields are standardized and also bucketized into 10 training quantiles, so either a
  numeric or a categorical tower can read them; prices are ``log1p``-transformed first.

Use ``get_schema(name)``; ``SCHEMAS`` maps every known name (aliases included) to its schema.
"""

from __future__ import annotations

from hybridrec.data.features import FeatureError, FeatureSchema, FieldSpec

MOVIELENS_100K = FeatureSchema(
    [
        FieldSpec(
            "genres",
            entity="item",
            kind="categorical",
            multi_valued=True,
            description="the 19 MovieLens genres (a list per movie)",
        ),
        FieldSpec(
            "release_year",
            entity="item",
            kind="numeric",
            num_buckets=10,
            description="release year, from the release date",
        ),
        FieldSpec(
            "title",
            entity="item",
            kind="text",
            min_df=2,
            max_features=5_000,
            # The loader's titles end in "(year)" (kept for display); that year is the
            # release_year field already, so the title's words leave it out.
            token_pattern=r"(?u)\b(?!\d{4}\)$)\w\w+\b",
            description="title words, the trailing (year) left out",
        ),
        FieldSpec(
            "freebase",
            entity="item",
            kind="text",
            token_pattern=r"\S+",
            lowercase=False,
            min_df=2,
            max_features=20_000,
            width=64,
            description="Freebase facts as relation=entity tokens (actors, directors, ...)",
        ),
        FieldSpec("age", entity="user", kind="numeric", num_buckets=10, description="age in years"),
        FieldSpec("gender", entity="user", kind="categorical", description="M or F"),
        FieldSpec("occupation", entity="user", kind="categorical", description="21 occupations"),
    ],
    name="movielens-100k",
)

BEER = FeatureSchema(
    [
        FieldSpec("beer_style", entity="item", kind="categorical", description="beer style"),
        FieldSpec(
            "brewery",
            entity="item",
            kind="categorical",
            column="brewery_id",
            min_count=2,
            description="brewery (by ID; names are not unique)",
        ),
        FieldSpec(
            "beer_abv",
            entity="item",
            kind="numeric",
            num_buckets=10,
            description="alcohol by volume, percent",
        ),
        FieldSpec(
            "beer_name",
            entity="item",
            kind="text",
            min_df=2,
            max_features=20_000,
            description="words of the beer's name",
        ),
    ],
    name="beer-advocate",
)

AMAZON_PRODUCTS = FeatureSchema(
    [
        FieldSpec(
            "text",
            entity="item",
            kind="text",
            column=("title", "description"),
            min_df=2,
            max_df=0.5,
            max_features=50_000,
            stop_words="english",
            width=64,
            description="title and description words",
        ),
        FieldSpec("brand", entity="item", kind="categorical", min_count=2, description="brand"),
        FieldSpec(
            "categories",
            entity="item",
            kind="categorical",
            multi_valued=True,
            min_count=2,
            max_width=32,
            description="category path entries, flattened",
        ),
        FieldSpec(
            "price",
            entity="item",
            kind="numeric",
            log1p=True,
            num_buckets=10,
            description="price in dollars, log1p",
        ),
    ],
    name="amazon-products",
)


SYNTHETIC_PLAIN = FeatureSchema(
    [
        FieldSpec("category", entity="item", kind="categorical", description="one category"),
        FieldSpec(
            "attribute",
            entity="item",
            kind="numeric",
            num_buckets=10,
            description="a standard-normal attribute",
        ),
        FieldSpec("text", entity="item", kind="text", min_df=2, description="topic words"),
        FieldSpec("segment", entity="user", kind="categorical", description="8 user segments"),
    ],
    name="synthetic-plain",
)


def _renamed(schema: FeatureSchema, name: str) -> FeatureSchema:
    return FeatureSchema(schema.fields, name=name)


SCHEMAS: dict[str, FeatureSchema] = {
    "movielens-100k": MOVIELENS_100K,
    "beer-advocate": BEER,
    "amazon-products": AMAZON_PRODUCTS,
    "synthetic-movies": _renamed(MOVIELENS_100K, "synthetic-movies"),
    "synthetic-beer": _renamed(BEER, "synthetic-beer"),
    "synthetic-products": _renamed(AMAZON_PRODUCTS, "synthetic-products"),
    "synthetic-plain": SYNTHETIC_PLAIN,
}

_ALIASES = {
    "ml-100k": "movielens-100k",
    "movielens": "movielens-100k",
    "beer": "beer-advocate",
    "beeradvocate": "beer-advocate",
    "amazon": "amazon-products",
    "synthetic": "synthetic-movies",
    "synthetic-amazon": "synthetic-products",
}


def get_schema(name: str) -> FeatureSchema:
    """The feature schema of a dataset.

    Args:
      name: a dataset name such as ``"movielens-100k"``, ``"beer-advocate"``, ``"amazon-products"`` or
        ``"synthetic-movies"`` (also ``dataset.name``); a few aliases such as ``"ml-100k"`` work.

    Returns:
      The ``FeatureSchema``.

    Raises:
      FeatureError: an unknown name; the message lists the known ones.
    """
    key = _ALIASES.get(name, name)
    if key not in SCHEMAS:
        known = sorted(SCHEMAS) + sorted(_ALIASES)
        raise FeatureError(f"no feature schema for dataset {name!r}; known names: {known}")
    return SCHEMAS[key]
