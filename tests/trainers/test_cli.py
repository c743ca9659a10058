"""The raygrad CLI through click's CliRunner: help, info, cluster wrapping, and clear usage errors."""
import pytest
from click.testing import CliRunner

from trainers import cli

GOOD_JOB = """
name: tiny
model: {class: "model.py:Tiny"}
data: {train: data.parquet, features: x, target: y}
"""


@pytest.fixture
def runner():
    return CliRunner()


@pytest.mark.parametrize("args", [[], ["train"], ["eval"], ["info"], ["cluster"], ["cluster", "submit"]])
def test_every_command_has_help_with_examples(runner, args):
    result = runner.invoke(cli.main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    if args:
        assert "Example" in result.output


def test_info_reports_devices(runner):
    result = runner.invoke(cli.main, ["info"])
    assert result.exit_code == 0, result.output
    assert "CUDA devices:" in result.output and "raygrad" in result.output


def _job(tmp_path, text):
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("model: [unclosed\n", "not valid YAML"),
        (GOOD_JOB + "optimiser: {lr: 1}\n", "unknown key 'optimiser'; did you mean 'optimizer'"),
        (GOOD_JOB + "epochs: ten\n", "'epochs' must be an integer or null, got str"),
        (GOOD_JOB.replace("data: {", "data: {batchsize: 3, "), "did you mean 'batch_size'"),
    ],
)
def test_bad_jobs_exit_2_with_one_clear_line(runner, tmp_path, text, message):
    result = runner.invoke(cli.main, ["train", _job(tmp_path, text)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_job_file_exits_2(runner, tmp_path):
    result = runner.invoke(cli.main, ["train", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_bad_set_override_exits_2(runner, tmp_path):
    result = runner.invoke(cli.main, ["train", _job(tmp_path, GOOD_JOB), "--set", "scaling.num_worker=2"])
    assert result.exit_code == 2 and "did you mean 'num_workers'" in result.output


def test_negative_workers_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(cli.main, ["train", _job(tmp_path, GOOD_JOB), "--workers", "-1"])
    assert result.exit_code == 2


def test_missing_data_file_exits_2(runner, tmp_path):
    (tmp_path / "model.py").write_text("def Tiny():\n    return None\n")
    result = runner.invoke(cli.main, ["train", _job(tmp_path, GOOD_JOB)])
    assert result.exit_code == 2, result.output
    assert "data.parquet" in result.output


def test_cluster_commands_wrap_ray(runner, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "_ray", lambda *args: calls.append(args) or 0)
    config = tmp_path / "cluster.yaml"
    config.write_text("cluster_name: x\n")
    job = _job(tmp_path, GOOD_JOB)
    for args in (["up"], ["down"], ["status"], ["submit", job, "--workers", "4", "--gpus"]):
        result = runner.invoke(cli.main, ["cluster", *args, "--config", str(config)])
        assert result.exit_code == 0, result.output
    assert calls[0] == ("up", str(config), "--yes") and calls[1] == ("down", str(config), "--yes")
    assert calls[2] == ("exec", str(config), "ray status")
    assert calls[3][0] == "exec" and "raygrad train" in calls[3][2] and "--workers 4 --gpus" in calls[3][2]


def test_cluster_without_config_exits_2(runner, tmp_path):
    result = runner.invoke(cli.main, ["cluster", "up", "--config", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_eval_of_missing_checkpoint_exits_2(runner, tmp_path):
    result = runner.invoke(cli.main, ["eval", str(tmp_path / "none.safetensors"), "--data", "x.parquet"])
    assert result.exit_code == 2, result.output
