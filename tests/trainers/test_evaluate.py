"""evaluate_checkpoint (`raygrad eval`): the job's model, loss and metrics on a data file."""
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from trainers.errors import ConfigError
from trainers.evaluate import evaluate_checkpoint
from trainer_helpers import blobs, make_trainer

JOB = {
    "name": "eval-me",
    "model": {"class": "trainer_helpers:RecordingMLP"},
    "data": {"train": "unused.parquet", "features": ["x", "id"], "target": "y"},
    "loss": "cross_entropy",
    "metrics": ["accuracy", "roc_auc"],
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    result = make_trainer(folder, "eval-me", max_epochs=1).fit()
    data = blobs(96, 1)  # the trainer's eval_data
    table = pa.table({"x": list(data["x"]), "y": data["y"], "id": data["id"]})
    pq.write_table(table, folder / "test.parquet")
    return result, folder


def test_run_folder_with_its_job_gives_the_training_run_metrics(trained):
    result, folder = trained
    run = folder / "eval-me"
    (run / "job.yaml").write_text(yaml.safe_dump({**JOB, "base_dir": str(folder)}))
    metrics = evaluate_checkpoint(str(run), str(folder / "test.parquet"), batch_size=10)
    assert metrics["samples"] == 96
    assert metrics["accuracy"] == pytest.approx(result.metrics["accuracy"])
    assert metrics["roc_auc"] == pytest.approx(result.metrics["roc_auc"])
    assert metrics["loss"] == pytest.approx(result.metrics["eval_loss"], rel=1e-5)


def test_missing_inputs_are_user_errors(trained, tmp_path):
    result, folder = trained
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_checkpoint(str(tmp_path / "none.safetensors"), "x.parquet")
    (folder / "eval-me" / "job.yaml").unlink(missing_ok=True)
    with pytest.raises(ConfigError, match="pass the job with --job"):
        evaluate_checkpoint(result.checkpoint.path, str(folder / "test.parquet"))
