"""Configs and job YAML: valid values pass, each wrong one names the field, the value and the fix."""
import pytest

from trainers.config import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from trainers.errors import ConfigError
from trainers.job import load_job, parse_job

MINIMAL = {"model": {"class": "m:M"}, "data": {"train": "x.parquet", "features": "image"}}


def test_defaults_are_valid():
    assert ScalingConfig().num_workers == 0 and not ScalingConfig().distributed
    run = RunConfig(name="r", storage_path="/tmp/x")
    assert run.max_epochs == 1 and run.run_path == "/tmp/x/r"
    assert CheckpointConfig().every_n_epochs == 1
    assert CheckpointConfig(every_n_steps=5).every_n_epochs is None


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: ScalingConfig(num_workers=-1), "num_workers must be >= 0, got -1"),
        (lambda: ScalingConfig(num_workers="2"), "num_workers must be an integer, got str"),
        (lambda: ScalingConfig(num_workers=0, use_gpu=True), "num_workers >= 1"),
        (lambda: ScalingConfig(placement_strategy="RANDOM"), "PACK, SPREAD"),
        (lambda: RunConfig(max_epochs=0), "max_epochs must be >= 1"),
        (lambda: RunConfig(name="a/b"), "without '/'"),
        (lambda: CheckpointConfig(score_mode="best"), "'max' or 'min'"),
        (lambda: CheckpointConfig(num_to_keep=0), "num_to_keep must be >= 1"),
        (lambda: FailureConfig(max_failures=-2), "max_failures must be >= -1"),
    ],
)
def test_bad_values_are_named(build, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build()


def test_job_defaults_and_overrides():
    job = parse_job(MINIMAL, ["optimizer.lr=0.01", "scaling.num_workers=2", "data.batch_size=16"])
    assert job["optimizer"]["lr"] == 0.01 and job["scaling"]["num_workers"] == 2
    assert job["data"]["batch_size"] == 16 and job["loss"] == "cross_entropy"


def test_unknown_key_suggests_the_nearest():
    with pytest.raises(ConfigError, match="unknown key 'optimiser'; did you mean 'optimizer'"):
        parse_job({**MINIMAL, "optimiser": {}})
    with pytest.raises(ConfigError, match="unknown key 'batchsize' in 'data'; did you mean 'batch_size'"):
        parse_job({**MINIMAL, "data": {**MINIMAL["data"], "batchsize": 3}})
    with pytest.raises(ConfigError, match="did you mean 'num_workers'"):
        parse_job(MINIMAL, ["scaling.num_worker=2"])


def test_wrong_types_name_the_expected_type():
    with pytest.raises(ConfigError, match="'data.batch_size' must be an integer, got str"):
        parse_job({**MINIMAL, "data": {**MINIMAL["data"], "batch_size": "big"}})
    with pytest.raises(ConfigError, match="'scaling.use_gpu' must be true/false"):
        parse_job({**MINIMAL, "scaling": {"use_gpu": 1}})


def test_missing_required_key():
    with pytest.raises(ConfigError, match="missing required key 'data.train'"):
        parse_job({"model": {"class": "m:M"}, "data": {"features": "x"}})


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="key=value"):
        parse_job(MINIMAL, ["optimizer.lr"])


def test_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_job(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_job(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("3\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_job(scalar)
