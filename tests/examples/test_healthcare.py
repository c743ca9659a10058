"""examples/healthcare: the WDBC MLP learns (via the CLI, in process) and calibration.py reports on it."""
import json

from click.testing import CliRunner
from example_helpers import EXAMPLES, load_example

from trainers import cli


def test_wdbc_learns_and_calibration_reports(tmp_path, capsys):
    result = CliRunner().invoke(cli.main, [
        "train", str(EXAMPLES / "healthcare" / "wdbc.yaml"), "--workers", "0", "--storage-path", str(tmp_path),
        "--set", "epochs=4", "--set", "scheduler.T_max=4", "--set", "run.verbose=0"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "wdbc" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["roc_auc"] > 0.9          # chance: 0.5
    assert rows[-1]["accuracy"] > 0.85        # always answering "benign" scores 0.71 on this split

    calibration = load_example("healthcare/calibration.py")
    report = calibration.report(tmp_path / "wdbc")
    assert report["metrics"]["samples"] == 114 and report["metrics"]["roc_auc"] > 0.9
    assert report["brier"] < 0.5 * report["base_rate"] * (1 - report["base_rate"])  # far better than the base rate
    assert sum(row["count"] for row in report["reliability"]) == 114
    assert "Brier score" in capsys.readouterr().out
