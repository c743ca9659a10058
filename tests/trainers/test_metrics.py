"""Metrics by name against scikit-learn, and the same values when the samples are split over ranks."""
import numpy as np
import pytest

from trainers.errors import ConfigError
from trainers.metrics import MetricAccumulator, resolve_metrics, roc_auc

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.fixture
def binary():
    rng = np.random.default_rng(0)
    targets = rng.integers(0, 2, 300)
    logits = rng.normal(size=300) + 1.5 * targets
    logits[:20] = np.round(logits[:20])  # ties
    return logits, targets


@pytest.fixture
def multiclass():
    rng = np.random.default_rng(1)
    targets = rng.integers(0, 7, 250)
    logits = rng.normal(size=(250, 7))
    logits[np.arange(250), targets] += 1.0
    return logits, targets


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_binary_metrics_match_sklearn(binary):
    logits, targets = binary
    probs = 1 / (1 + np.exp(-logits))
    result = _evaluate(["accuracy", "roc_auc", "log_loss"], logits, targets)
    assert result["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(targets, logits > 0))
    assert result["roc_auc"] == pytest.approx(sklearn_metrics.roc_auc_score(targets, logits))
    assert result["log_loss"] == pytest.approx(sklearn_metrics.log_loss(targets, probs))
    two_column = np.stack([np.zeros_like(logits), logits], axis=1)
    assert roc_auc(two_column, targets) == pytest.approx(result["roc_auc"])


def test_multiclass_metrics_match_sklearn(multiclass):
    logits, targets = multiclass
    result = _evaluate(["accuracy", "top5_accuracy", "log_loss"], logits, targets)
    assert result["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(targets, logits.argmax(1)))
    assert result["top5_accuracy"] == pytest.approx(
        sklearn_metrics.top_k_accuracy_score(targets, logits, k=5, labels=range(7)))
    assert result["log_loss"] == pytest.approx(sklearn_metrics.log_loss(targets, _softmax(logits), labels=range(7)))


def test_regression_metrics():
    rng = np.random.default_rng(2)
    outputs, targets = rng.normal(size=(50, 1)), rng.normal(size=50)
    result = _evaluate(["mse", "mae"], outputs, targets)
    assert result["mse"] == pytest.approx(sklearn_metrics.mean_squared_error(targets, outputs[:, 0]))
    assert result["mae"] == pytest.approx(sklearn_metrics.mean_absolute_error(targets, outputs[:, 0]))


@pytest.mark.parametrize("ranks", [2, 3])
def test_split_over_ranks_gives_the_whole_set_result(binary, ranks):
    logits, targets = binary

    def median_margin(outputs, labels):
        return float(np.median(outputs * (2 * labels - 1)))

    names = ["accuracy", "roc_auc", "log_loss", median_margin]
    whole = _evaluate(names, logits, targets)
    metrics = resolve_metrics(names)
    states = []
    for part in np.array_split(np.arange(len(targets)), ranks):
        accumulator = MetricAccumulator(metrics)
        for batch in np.array_split(part, 4):
            accumulator.update(logits[batch], targets[batch], loss=float(batch.size))
        states.append(accumulator.state())
    combined = MetricAccumulator(metrics).combine(states)
    assert combined.keys() == whole.keys() | {"eval_loss"}
    for name, value in whole.items():
        assert combined[name] == pytest.approx(value), name


def test_unknown_names_and_duplicates_are_config_errors():
    with pytest.raises(ConfigError, match="unknown metric 'acc'.*accuracy"):
        resolve_metrics(["acc"])
    with pytest.raises(ConfigError, match="more than once"):
        resolve_metrics(["mse", "mse"])


def test_roc_auc_with_one_class_is_nan():
    assert np.isnan(roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))


def _evaluate(names, outputs, targets):
    accumulator = MetricAccumulator(resolve_metrics(names))
    accumulator.update(outputs, targets)
    return accumulator.combine([accumulator.state()])
