"""Plots write readable PNGs of the requested size and draw the values and labels they should."""

import json

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from hybridrec import plots
from hybridrec.logging import MetricWriter
from hybridrec.plots import PlotInputError


def _read_png(path, height, width):
    """Reads the PNG back with matplotlib and checks its pixel size and that it is not blank."""
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (height, width)
    assert image[..., :3].std() > 0.01  # something was drawn
    return image


def _records():
    records = [{"step": s, "time": 1.0 + s, "train/loss": 1.0 / s} for s in range(1, 21)]
    for s in (5, 10, 15, 20):
        records.append({"step": s, "time": 1.0 + s, "val/ndcg@10": s / 100, "val/hr@10": s / 50})
    return records


# ---------------------------------------------------------------------------------------------
# Learning curves
# ---------------------------------------------------------------------------------------------


def test_learning_curves_from_records(tmp_path):
    path = plots.plot_learning_curves(
        _records(), tmp_path / "plots" / "curves.png", figsize=(9, 3), dpi=50
    )
    assert path == str(tmp_path / "plots" / "curves.png")  # parent directory created
    _read_png(path, 150, 450)


def test_learning_curves_from_workdir_written_by_metric_writer(tmp_path):
    with MetricWriter(str(tmp_path)) as writer:
        for record in _records():
            writer.write_scalars(record["step"], {k: v for k, v in record.items() if "/" in k})
    path = plots.plot_learning_curves(
        str(tmp_path), tmp_path / "c.png", metrics=["val/ndcg@10"], figsize=(4, 3), dpi=40
    )
    _read_png(path, 120, 160)


def test_default_curve_metrics_are_loss_then_evaluation_tags():
    records = _records() + [{"step": 3, "train/lr": 0.1, "cold_items/auc": 0.7}]
    assert plots._default_curve_metrics([records]) == [
        "train/loss",
        "cold_items/auc",
        "val/hr@10",
        "val/ndcg@10",
    ]


def test_learning_curve_sorts_and_keeps_latest_value_of_a_relogged_step():
    # A resumed run: steps 1..3, then restarted from step 2 with different values.
    records = [
        {"step": 1, "train/loss": 1.0},
        {"step": 2, "train/loss": 0.9},
        {"step": 3, "train/loss": 0.8},
        {"step": 2, "train/loss": 0.7},
        {"step": 3, "train/loss": "nan"},  # how logging stores a non-finite value
        {"step": 4, "val/ndcg@10": 0.2},
    ]
    steps, values = plots.learning_curve(records, "train/loss")
    np.testing.assert_array_equal(steps, [1, 2, 3])
    np.testing.assert_array_equal(values, [1.0, 0.7, np.nan])


def test_learning_curves_errors(tmp_path):
    with pytest.raises(PlotInputError, match="none of the metrics.*logged tags"):
        plots.plot_learning_curves(_records(), tmp_path / "x.png", metrics=["val/mrr"])
    with pytest.raises(PlotInputError, match="no 'step'"):
        plots.plot_learning_curves([{"train/loss": 1.0}], tmp_path / "x.png")
    with pytest.raises(FileNotFoundError, match="metrics.jsonl"):
        plots.plot_learning_curves(str(tmp_path), tmp_path / "x.png")
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\n{oops\n{"step": 2}\n')
    with pytest.raises(PlotInputError, match=r"metrics.jsonl:2: not valid JSON"):
        plots.read_records(str(tmp_path))
    assert not (tmp_path / "x.png").exists()


def test_read_records_skips_truncated_last_line(tmp_path):
    lines = [json.dumps({"step": 1, "train/loss": 0.5}), '{"step": 2, "train/lo']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
    assert plots.read_records(str(tmp_path)) == [{"step": 1, "train/loss": 0.5}]


def test_run_comparison_overlays_runs(tmp_path):
    histories = {"a": _records(), "b": [{"step": 2, "train/loss": 0.3, "val/ndcg@10": 0.4}]}
    path = plots.plot_run_comparison(histories, tmp_path / "cmp.png", figsize=(6, 4), dpi=30)
    _read_png(path, 120, 180)


# ---------------------------------------------------------------------------------------------
# ROC / PR
# ---------------------------------------------------------------------------------------------


def _curve(seed, signal=1.5, n=400):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    scores = rng.normal(size=n) + signal * labels
    fpr, tpr, _ = roc_curve(labels, scores)
    precision, recall, _ = precision_recall_curve(labels, scores)
    return labels, {
        "fpr": fpr,
        "tpr": tpr,
        "auc": auc(fpr, tpr),
        "precision": precision,
        "recall": recall,
        "average_precision": average_precision_score(labels, scores),
    }


def test_roc_pr_single_and_several(tmp_path):
    labels, curve = _curve(0)
    _read_png(plots.plot_roc_pr(curve, tmp_path / "roc.png", figsize=(8, 4), dpi=40), 160, 320)
    _, cold = _curve(1, signal=0.3)
    path = plots.plot_roc_pr({"warm": curve, "cold": cold}, tmp_path / "roc2.png", dpi=30)
    _read_png(path, 135, 300)  # default figsize (10, 4.5)


def test_pr_chance_line_defaults_to_the_positive_rate():
    labels, curve = _curve(2)
    assert plots._check_curve(curve, "m")["prevalence"] == pytest.approx(labels.mean())
    assert plots._check_curve({**curve, "prevalence": 0.5}, "m")["prevalence"] == 0.5


def test_roc_pr_bad_inputs(tmp_path):
    _, curve = _curve(3)
    with pytest.raises(PlotInputError, match=r"'model'.*fpr .* and tpr .* same length"):
        plots.plot_roc_pr({**curve, "tpr": curve["tpr"][:-1]}, tmp_path / "x.png")
    with pytest.raises(PlotInputError, match=r"missing \['precision'\]"):
        plots.plot_roc_pr({k: v for k, v in curve.items() if k != "precision"}, tmp_path / "x.png")
    with pytest.raises(PlotInputError, match="recall must be .* within"):
        plots.plot_roc_pr({"m": {**curve, "recall": curve["recall"] * 2}}, tmp_path / "x.png")


# ---------------------------------------------------------------------------------------------
# Item embeddings
# ---------------------------------------------------------------------------------------------


def _planted_vectors(n=60, d=6, seed=0):
    """Variance 25 along a known direction, 4 along a second, 0.01 elsewhere."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scales = np.array([5.0, 2.0] + [0.1] * (d - 2))
    return rng.normal(size=(n, d)) * scales @ basis.T + 3.0, basis


def test_item_embeddings_pca_matches_numpy_svd(tmp_path):
    vectors, basis = _planted_vectors()
    labels = [f"movie {i}" for i in range(len(vectors))]
    out = plots.plot_item_embeddings(
        vectors, labels, tmp_path / "emb.png", figsize=(5, 4), dpi=40, num_labels=8
    )
    _read_png(out.path, 160, 200)
    centred = vectors - vectors.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    signs = np.sign(np.sum(out.components * vt[:2], axis=1))  # PCA's axes are defined up to sign
    np.testing.assert_allclose(out.components, signs[:, None] * vt[:2], atol=1e-10)
    np.testing.assert_allclose(out.explained_variance_ratio, s[:2] ** 2 / np.sum(s**2))
    np.testing.assert_allclose(out.coords, centred @ out.components.T, atol=1e-10)
    np.testing.assert_allclose(out.mean, vectors.mean(axis=0))
    # the planted directions are recovered
    assert (
        abs(out.components[0] @ basis[:, 0]) > 0.95 and abs(out.components[1] @ basis[:, 1]) > 0.9
    )
    # without popularity the extremes of both axes are labelled first
    first = set(out.labelled[:4].tolist())
    assert first == {
        int(out.coords[:, 0].argmax()),
        int(out.coords[:, 0].argmin()),
        int(out.coords[:, 1].argmax()),
        int(out.coords[:, 1].argmin()),
    }
    assert len(set(out.labelled.tolist())) == 8


def test_item_embeddings_label_most_popular(tmp_path):
    vectors, _ = _planted_vectors(n=30)
    popularity = np.arange(30.0)
    popularity[[4, 7]] = 100.0  # ties: item order kept
    out = plots.plot_item_embeddings(
        vectors,
        np.array([f"m{i}" for i in range(30)]),
        tmp_path / "e.png",
        popularity=popularity,
        num_labels=4,
        dpi=20,
    )
    np.testing.assert_array_equal(out.labelled, [4, 7, 29, 28])
    # num_labels larger than N labels every item once
    out = plots.plot_item_embeddings(vectors, [""] * 30, tmp_path / "f.png", num_labels=99, dpi=20)
    assert sorted(out.labelled.tolist()) == list(range(30))


def test_item_embeddings_bad_inputs(tmp_path):
    vectors, _ = _planted_vectors(n=10)
    with pytest.raises(PlotInputError, match=r"labels must have shape \(10,\).*\(9,\)"):
        plots.plot_item_embeddings(vectors, ["x"] * 9, tmp_path / "x.png")
    with pytest.raises(PlotInputError, match=r"popularity must have shape \(10,\)"):
        plots.plot_item_embeddings(vectors, ["x"] * 10, tmp_path / "x.png", popularity=np.ones(3))
    with pytest.raises(PlotInputError, match=r"\(N, D\).*\(10,\)"):
        plots.plot_item_embeddings(vectors[:, 0], ["x"] * 10, tmp_path / "x.png")
    vectors[3, 1] = np.nan
    with pytest.raises(PlotInputError, match=r"non-finite values in rows \[3\]"):
        plots.plot_item_embeddings(vectors, ["x"] * 10, tmp_path / "x.png")


# ---------------------------------------------------------------------------------------------
# Item biases
# ---------------------------------------------------------------------------------------------


def test_extreme_indices():
    biases = np.array([0.1, 2.0, -1.0, 0.5, -3.0, 2.0, 0.0])
    top, bottom = plots.extreme_indices(biases, 2)
    np.testing.assert_array_equal(top, [1, 5])  # tie: index order
    np.testing.assert_array_equal(bottom, [4, 2])
    top, bottom = plots.extreme_indices(biases, 5)  # 2k > N: disjoint, bottom gets the rest
    np.testing.assert_array_equal(top, [1, 5, 3, 0, 6])
    np.testing.assert_array_equal(bottom, [4, 2])
    with pytest.raises(PlotInputError, match=r"not finite at indices \[1\]"):
        plots.extreme_indices(np.array([0.0, np.inf]), 1)
    with pytest.raises(PlotInputError, match="k must be >= 1"):
        plots.extreme_indices(biases, 0)


def test_item_biases_plot_labels_extremes(tmp_path):
    rng = np.random.default_rng(0)
    biases = rng.normal(size=200)
    labels = np.array([f"title {i}" for i in range(200)])
    path = plots.plot_item_biases(biases, labels, tmp_path / "b.png", k=5, figsize=(8, 3), dpi=50)
    _read_png(path, 150, 400)
    fig = plots._biases_figure(biases, labels, 5, None, None, 50)
    top_ax, bottom_ax = fig.axes
    order = np.argsort(biases)
    assert [t.get_text() for t in top_ax.get_yticklabels()] == list(labels[order[::-1][:5]])
    assert [t.get_text() for t in bottom_ax.get_yticklabels()] == list(labels[order[:5]])
    np.testing.assert_allclose([p.get_width() for p in top_ax.patches], biases[order[::-1][:5]])


def test_item_biases_bad_inputs(tmp_path):
    with pytest.raises(PlotInputError, match=r"labels must have shape \(3,\)"):
        plots.plot_item_biases(np.zeros(3), ["a", "b"], tmp_path / "x.png")
    with pytest.raises(PlotInputError, match="1-D"):
        plots.plot_item_biases(np.zeros((3, 1)), ["a", "b", "c"], tmp_path / "x.png")


# ---------------------------------------------------------------------------------------------
# Ablation
# ---------------------------------------------------------------------------------------------


def _ablation_table():
    return pd.DataFrame(
        {
            "towers": ["ids", "ids", "ids+genre", "ids+genre", "genre"],
            "segment": ["warm", "cold", "warm", "cold", "cold"],
            "mean": [0.30, 0.02, 0.31, 0.12, 0.11],
            "ci_low": [0.28, 0.01, 0.29, 0.10, 0.08],
            "ci_high": [0.32, 0.04, 0.33, 0.15, 0.13],
        }
    )


def test_ablation_bars_and_error_bars(tmp_path):
    table = _ablation_table()
    path = plots.plot_ablation(table, tmp_path / "abl.png", "ndcg@10", figsize=(6, 4), dpi=40)
    _read_png(path, 160, 240)
    fig = plots._ablation_figure(
        table.set_index(["towers", "segment"]),  # index levels work as well as columns
        metric="ndcg@10",
        group="towers",
        hue="segment",
        mean="mean",
        ci_low="ci_low",
        ci_high="ci_high",
        ci_level=0.9,
        title=None,
        figsize=None,
        dpi=40,
    )
    ax = fig.axes[0]
    warm, cold = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["ids", "ids+genre", "genre"]
    np.testing.assert_allclose([p.get_height() for p in warm.patches][:2], [0.30, 0.31])
    assert np.isnan(warm.patches[2].get_height())  # "genre" has no warm row: a gap
    np.testing.assert_allclose([p.get_height() for p in cold.patches], [0.02, 0.12, 0.11])
    segments = cold.errorbar.lines[2][0].get_segments()  # vertical lines from ci_low to ci_high
    np.testing.assert_allclose(
        [s[:, 1] for s in segments], [[0.01, 0.04], [0.10, 0.15], [0.08, 0.13]]
    )
    assert ax.get_ylabel() == "ndcg@10"
    assert ax.get_title() == "Ablation: ndcg@10 (90% CI)"


def test_ablation_long_table_filtered_by_metric(tmp_path):
    table = pd.concat(
        [_ablation_table().assign(metric="ndcg@10"), _ablation_table().assign(metric="auc")]
    )
    plots.plot_ablation(table, tmp_path / "a.png", metric="auc", dpi=20)
    with pytest.raises(PlotInputError, match=r"metric 'mrr' is not in the table's metrics"):
        plots.plot_ablation(table, tmp_path / "a.png", metric="mrr")


def test_ablation_bad_inputs(tmp_path):
    table = _ablation_table()
    with pytest.raises(PlotInputError, match=r"lacks \['ci_high'\]"):
        plots.plot_ablation(table.drop(columns="ci_high"), tmp_path / "x.png")
    bad = table.copy()
    bad.loc[3, "ci_low"] = 0.5
    with pytest.raises(
        PlotInputError, match=r"towers='ids\+genre', segment='cold'.*ci_low <= mean"
    ):
        plots.plot_ablation(bad, tmp_path / "x.png")
    with pytest.raises(PlotInputError, match="several rows for towers='ids'"):
        plots.plot_ablation(pd.concat([table, table.iloc[:1]]), tmp_path / "x.png")
    # no CI columns: plain bars
    plots.plot_ablation(table[["towers", "segment", "mean"]], tmp_path / "plain.png", dpi=20)
