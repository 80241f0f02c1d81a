"""Logging keeps tags as given and is read back right by TensorBoard's own backend (scalars,
hparams across runs of different configs, images); run statuses; checkpoints round-trip."""

import io
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tbparse
from matplotlib.figure import Figure
from PIL import Image

from hybridrec.checkpoint import Checkpointer
from hybridrec.logging import (
    MetricWriter,
    flatten_config,
    hparam_value,
    read_status,
    write_json,
    write_plot_images,
)


def test_scalars_round_trip(tmp_path):
    with MetricWriter(str(tmp_path)) as writer:
        writer.write_scalars(1, {"train/loss": 0.5, "val/ndcg@10": jnp.asarray(0.25)})
        writer.write_scalars(2, {"train/loss": 0.4})
    scalars = tbparse.SummaryReader(str(tmp_path)).scalars
    assert set(scalars["tag"]) == {"train/loss", "val/ndcg@10"}  # '@' kept
    assert scalars[scalars["tag"] == "train/loss"]["value"].tolist() == [0.5, 0.4000000059604645]
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 1 and lines[0]["val/ndcg@10"] == 0.25


# ------------------------------------------------------------------ TensorBoard's own backend
class _TensorBoard:
    """The logdir as TensorBoard serves it: multiplexer -> data provider -> hparams plugin."""

    def __init__(self, logdir):
        from tensorboard import context
        from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
        from tensorboard.plugins import base_plugin
        from tensorboard.plugins.hparams import backend_context

        multiplexer = plugin_event_multiplexer.EventMultiplexer()
        multiplexer.AddRunsFromDirectory(str(logdir))
        multiplexer.Reload()
        self.provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
        tb_context = base_plugin.TBContext(
            logdir=str(logdir), data_provider=self.provider, multiplexer=multiplexer
        )
        self.hparams = backend_context.Context(tb_context)
        self.ctx = context.RequestContext()

    def experiment(self):
        """``{name: HParamInfo}`` of the HParams tab, and its metric tags."""
        from tensorboard.plugins.hparams import api_pb2, get_experiment

        request = api_pb2.GetExperimentRequest()
        experiment = get_experiment.Handler(self.ctx, self.hparams, "", request).run()
        infos = {info.name: info for info in experiment.hparam_infos}
        assert len(infos) == len(experiment.hparam_infos)
        return infos, {m.name.tag for m in experiment.metric_infos}

    def sessions(self):
        """``{run: {hparam: (kind, value)}}`` as the HParams tab's table has them."""
        from tensorboard.plugins.hparams import api_pb2, list_session_groups

        request = api_pb2.ListSessionGroupsRequest(
            start_index=0, slice_size=100, allowed_statuses=[api_pb2.STATUS_UNKNOWN]
        )
        response = list_session_groups.Handler(self.ctx, self.hparams, "", request).run()
        out = {}
        for group in response.session_groups:
            values = {}
            for name, value in group.hparams.items():
                kind = value.WhichOneof("kind")
                values[name] = (kind, getattr(value, kind))
            for session in group.sessions:
                out[session.name] = values
        return out

    def images(self):
        """``{(run, tag): [(step, width, height, png bytes), ...]}``."""
        series = self.provider.read_blob_sequences(
            self.ctx, experiment_id="", plugin_name="images", downsample=100
        )
        out = {}
        for run, tags in series.items():
            for tag, data in tags.items():
                out[run, tag] = [
                    (
                        d.step,
                        *(
                            int(self.provider.read_blob(self.ctx, blob_key=b.blob_key))
                            for b in d.values[:2]
                        ),
                        self.provider.read_blob(self.ctx, blob_key=d.values[2].blob_key),
                    )
                    for d in data
                ]
        return out


def _mf_config():
    return {
        "seed": 0,
        "data": {"name": "movielens-100k", "implicit_threshold": 4.0, "path": None},
        "model": {"name": "mf", "embedding_dim": 32},
        "train": {"loss": "bpr", "num_epochs": 20, "use_bias": True},
        "eval": {"ks": (10,), "metrics": None},
        "optimizer": {"clip_norm": None, "learning_rate": 0.01},
    }


def _hybrid_config():
    config = _mf_config()
    config["data"]["implicit_threshold"] = None  # set in mf, unset here
    config["model"] = {
        "name": "hybrid",
        "embedding_dim": 16,
        "combiner": "sum",
        "id_dropout": 0.1,
        "item_towers": {"genres": {"tower": "categorical", "pooling": "mean"}},
    }
    config["train"] = {"loss": "adaptive_bpr", "num_epochs": 20, "use_bias": False}
    config["optimizer"]["clip_norm"] = 1.0
    return config


def _write_run(run_dir, config, ndcg):
    with MetricWriter(str(run_dir)) as writer:
        writer.write_hparams(flatten_config(config), metric_tags=["val/ndcg@10"])
        writer.write_scalars(1, {"train/loss": 0.5, "val/ndcg@10": ndcg})


def test_hparams_of_runs_of_different_configs_all_shown_typed_and_differing_found(tmp_path):
    logdir = tmp_path / "runs"
    _write_run(logdir / "mf", _mf_config(), 0.2)
    mf_flat = flatten_config(_mf_config())
    mf_keys = {k for k, v in mf_flat.items() if v is not None}

    infos, metrics = _TensorBoard(logdir).experiment()
    assert set(infos) == mf_keys  # None values (data.path, eval.metrics) are not logged
    assert metrics == {"train/loss", "val/ndcg@10"}

    # A run of another config added later (a runs/ folder that grows): the tab now shows the
    # union of both runs' hparams, not one run's.
    _write_run(logdir / "hybrid", _hybrid_config(), 0.3)
    hybrid_flat = flatten_config(_hybrid_config())
    hybrid_keys = {k for k, v in hybrid_flat.items() if v is not None}
    tb = _TensorBoard(logdir)
    infos, _ = tb.experiment()
    assert set(infos) == mf_keys | hybrid_keys
    assert {"model.combiner", "model.item_towers.genres.tower"} <= set(infos)  # hybrid only
    assert "data.implicit_threshold" in infos  # set by mf only

    from tensorboard.plugins.hparams import api_pb2

    types = {name: info.type for name, info in infos.items()}
    assert types["model.embedding_dim"] == api_pb2.DATA_TYPE_FLOAT64
    assert types["optimizer.learning_rate"] == api_pb2.DATA_TYPE_FLOAT64
    assert types["model.name"] == api_pb2.DATA_TYPE_STRING
    assert types["train.use_bias"] == api_pb2.DATA_TYPE_BOOL
    assert types["eval.ks"] == api_pb2.DATA_TYPE_STRING  # a tuple, as its JSON text
    differing = {name for name, info in infos.items() if info.differs}
    assert differing == {"model.name", "model.embedding_dim", "train.loss", "train.use_bias"}

    sessions = tb.sessions()
    assert set(sessions) == {"mf", "hybrid"}
    assert sessions["mf"]["model.embedding_dim"] == ("number_value", 32.0)
    assert sessions["hybrid"]["model.embedding_dim"] == ("number_value", 16.0)
    assert sessions["mf"]["train.use_bias"] == ("bool_value", True)
    assert sessions["hybrid"]["model.combiner"] == ("string_value", "sum")
    assert sessions["hybrid"]["optimizer.clip_norm"] == ("number_value", 1.0)
    assert sessions["mf"]["eval.ks"] == ("string_value", "[10]")
    for name, flat in (("mf", mf_flat), ("hybrid", hybrid_flat)):
        assert set(sessions[name]) == {k for k, v in flat.items() if v is not None}
        assert ("string_value", "None") not in sessions[name].values()


def test_no_run_writes_an_experiment_description(tmp_path):
    # One experiment description per run is what made TensorBoard show one run's columns.
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.plugins.hparams import metadata

    _write_run(tmp_path, _mf_config(), 0.2)
    acc = event_accumulator.EventAccumulator(str(tmp_path))
    acc.Reload()
    tags = set(acc.PluginTagToContent(metadata.PLUGIN_NAME))
    assert tags == {metadata.SESSION_START_INFO_TAG}


def test_hparam_value_types():
    assert hparam_value(True) is True and hparam_value(np.bool_(False)) is False
    assert hparam_value(np.int64(3)) == 3 and type(hparam_value(np.int64(3))) is int
    assert type(hparam_value(np.float32(0.5))) is float
    assert hparam_value(None) is None
    assert hparam_value(float("nan")) == "nan" and hparam_value(-float("inf")) == "-inf"
    assert hparam_value((1, "a")) == '[1, "a"]'
    assert hparam_value("x") == "x"


# ------------------------------------------------------------------------------------ images
def _png_file(path, width, height):
    fig = Figure(figsize=(width / 50, height / 50), dpi=50)
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.savefig(path)
    return path


def test_images_read_back_by_tensorboard(tmp_path):
    run = tmp_path / "runs" / "mf"
    plots = run / "plots"
    (plots / "sub").mkdir(parents=True)
    _png_file(plots / "learning_curves.png", 200, 100)
    _png_file(plots / "sub" / "roc.png", 100, 150)
    (plots / "notes.txt").write_text("not an image")
    array = np.zeros((6, 4, 3), np.uint8)
    array[2, 1] = (255, 0, 10)
    rgba = np.full((3, 5, 4), 128, np.uint8)
    with MetricWriter(str(run)) as writer:
        tags = write_plot_images(writer, plots, step=7)
        writer.write_image(3, "debug/array", array)
        writer.write_image(3, "debug/rgba", rgba)
        assert write_plot_images(writer, run / "no_plots", step=7) == []
    assert tags == ["plots/learning_curves", "plots/sub/roc"]

    images = _TensorBoard(tmp_path / "runs").images()
    assert set(images) == {
        ("mf", "plots/learning_curves"),
        ("mf", "plots/sub/roc"),
        ("mf", "debug/array"),
        ("mf", "debug/rgba"),
    }
    [(step, width, height, png)] = images["mf", "plots/learning_curves"]
    assert (step, width, height) == (7, 200, 100)
    assert png == (plots / "learning_curves.png").read_bytes()  # the file, as it is
    assert images["mf", "plots/sub/roc"][0][1:3] == (100, 150)
    [(step, width, height, png)] = images["mf", "debug/array"]
    assert (step, width, height) == (3, 4, 6)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), array)
    decoded = np.asarray(Image.open(io.BytesIO(images["mf", "debug/rgba"][0][3])))
    np.testing.assert_array_equal(decoded, rgba)


def test_write_image_rejects_what_is_not_an_image(tmp_path):
    (tmp_path / "fake.png").write_bytes(b"GIF89a not a png at all, long enough")
    with MetricWriter(str(tmp_path)) as writer:
        with pytest.raises(ValueError, match="fake.png: not a PNG"):
            writer.write_image(0, "x", tmp_path / "fake.png")
        with pytest.raises(ValueError, match=r"\(H, W, 3\|4\) uint8 array, got shape \(4, 4\)"):
            writer.write_image(0, "x", np.zeros((4, 4), np.uint8))
        with pytest.raises(ValueError, match="dtype float32"):
            writer.write_image(0, "x", np.zeros((4, 4, 3), np.float32))


# ------------------------------------------------------------------------------------ status
def test_read_status(tmp_path):
    assert read_status(tmp_path) is None  # a run from before statuses
    write_json(str(tmp_path / "status.json"), {"state": "failed", "error": "ValueError: x"})
    assert read_status(tmp_path) == {"state": "failed", "error": "ValueError: x"}
    (tmp_path / "status.json").write_text('{"state": "compl')
    status = read_status(str(tmp_path))
    assert status["state"] == "unknown" and "unreadable" in status["error"]
    (tmp_path / "status.json").write_text("[1, 2]")
    assert read_status(tmp_path)["state"] == "unknown"


def test_flatten_config():
    flat = flatten_config(
        {"model": {"dim": 3, "towers": {"id": {"tower": "ids"}}}, "ks": (1, 5), "clip": None}
    )
    assert flat == {"model.dim": 3, "model.towers.id.tower": "ids", "ks": "[1, 5]", "clip": None}


def test_checkpoint_round_trip_keeps_latest(tmp_path):
    ckpt = Checkpointer(str(tmp_path), max_to_keep=2)
    assert ckpt.latest_step() is None
    params = {"w": jnp.arange(6.0).reshape(2, 3)}
    for step in (1, 2, 3):
        ckpt.save(
            step,
            params=params,
            opt_state={"count": np.asarray(step), "mu": params["w"] * step},
            host={"best": 0.5 * step},
        )
    assert ckpt.latest_step() == 3
    assert sorted(
        int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()
    ) == [2, 3]
    restored, opt_state, host = ckpt.restore(
        params={"w": jnp.zeros((2, 3))},
        opt_state={"count": np.asarray(0), "mu": jnp.zeros((2, 3))},
    )
    assert host == {"best": 1.5}
    np.testing.assert_array_equal(restored["w"], params["w"])
    assert int(opt_state["count"]) == 3
    np.testing.assert_array_equal(opt_state["mu"], params["w"] * 3)
    # Parameters alone, from an abstract target, without the optimizer state; an older step too.
    abstract = {"w": jax.ShapeDtypeStruct((2, 3), jnp.float32)}
    np.testing.assert_array_equal(ckpt.restore_params(abstract)["w"], params["w"])
    np.testing.assert_array_equal(ckpt.restore_params(abstract, step=2)["w"], params["w"])
    with pytest.raises(FileNotFoundError, match="step 1"):
        ckpt.restore_params(abstract, step=1)
    ckpt.close()
