"""examples/language: stdlib text data, the character LM learns and `raygrad generate` samples it,
the snippet classifier beats chance. Small models and few steps: learning, not quality."""
import json
import math

import pytest
from click.testing import CliRunner
from example_helpers import EXAMPLES, load_example

from trainers import cli

stdlib_text = load_example("language/stdlib_text.py")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return stdlib_text.prepare(tmp_path_factory.mktemp("stdlib_text"), log=lambda line: None)


def _train(job: str, runs, overrides):
    result = CliRunner().invoke(cli.main, ["train", str(EXAMPLES / "language" / job), "--workers", "0",
                                           "--storage-path", str(runs), "--set", "run.verbose=0",
                                           *[arg for item in overrides for arg in ("--set", item)]])
    assert result.exit_code == 0, result.output
    return result


def _rows(run_folder):
    return [json.loads(line) for line in (run_folder / "metrics.jsonl").read_text().splitlines()]


def test_encode_decode_round_trip():
    text = "def f(x):\n\treturn x  # é"
    codes = stdlib_text.encode(text)
    assert codes.dtype.name == "uint8" and codes.max() <= stdlib_text.OTHER
    assert stdlib_text.decode(codes) == text.replace("é", "\ufffd")


def test_prepare_is_deterministic_and_balanced(data):
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["settings"] == stdlib_text.settings()
    import pyarrow.parquet as pq

    labels = pq.read_table(data / "snippets_eval.parquet").column("label").to_numpy()
    assert len(set(labels.tolist())) == len(stdlib_text.PACKAGES)
    assert (labels == 0).sum() == manifest["snippets"]["eval_per_class"]  # balanced: chance is 1/6
    modified = (data / "manifest.json").stat().st_mtime_ns
    stdlib_text.prepare(data, log=lambda line: None)  # up to date: nothing rewritten
    assert (data / "manifest.json").stat().st_mtime_ns == modified


@pytest.fixture(scope="module")
def lm_run(data, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    _train("charlm.yaml", runs, [f"data.train={data / 'lm_train.parquet'}", f"data.eval={data / 'lm_eval.parquet'}",
                                 "model.kwargs.d_model=64", "max_steps=80", "scheduler.T_max=80",
                                 "checkpoint.every_n_steps=40", "optimizer.lr=0.005"])
    return runs / "charlm"


def test_char_lm_learns(lm_run):
    rows = _rows(lm_run)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["eval_loss"] < math.log(128) - 1.0  # uniform guessing: ln 128 = 4.85 nats per character


def test_generate_prints_the_prompt_and_its_continuation(lm_run):
    result = CliRunner().invoke(cli.main, ["generate", str(lm_run), "--prompt", "def ", "--length", "30",
                                           "--temperature", "0.8", "--seed", "1"])
    assert result.exit_code == 0, result.output
    text = result.output.rstrip("\n")
    assert text.startswith("def ") and len(text) == 4 + 30
    again = CliRunner().invoke(cli.main, ["generate", str(lm_run), "--prompt", "def ", "--length", "30",
                                          "--temperature", "0.8", "--seed", "1"])
    assert again.output == result.output  # seeded: repeatable


def test_snippet_classifier_beats_chance_and_cannot_generate(data, tmp_path):
    _train("classify.yaml", tmp_path, [f"data.train={data / 'snippets_train.parquet'}",
                                       f"data.eval={data / 'snippets_eval.parquet'}", "epochs=1",
                                       "max_steps=120", "model.kwargs.layers=1", "optimizer.lr=0.004"])
    rows = _rows(tmp_path / "snippets")
    assert rows[-1]["accuracy"] > 1.5 / len(stdlib_text.PACKAGES)  # chance: 1/6

    result = CliRunner().invoke(cli.main, ["generate", str(tmp_path / "snippets"), "--prompt", "x"])
    assert result.exit_code == 2 and "has no generate(prompt, length, temperature) method" in result.output
