"""data.transform and data.train_transform: which datasets get which, in what order, and early errors."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trainers.build import datasets_from
from trainers.errors import ConfigError
from trainers.job import parse_job

TRANSFORMS = '''
import numpy as np

def scale(batch):
    return {**batch, "x": batch["x"] * 10}

def shift(batch):
    return {**batch, "x": batch["x"] + 1}

NOT_A_FUNCTION = 3
'''


@pytest.fixture
def folder(tmp_path):
    for name, values in (("train", np.arange(8.0)), ("test", np.arange(100.0, 104.0))):
        table = pa.table({"x": values, "y": np.zeros(len(values), np.int64)})
        pq.write_table(table, tmp_path / f"{name}.parquet", row_group_size=2)  # units to hold out
    (tmp_path / "fns.py").write_text(TRANSFORMS)
    return tmp_path


def _data(folder, **overrides):
    job = parse_job({"name": "t", "model": {"class": "fns.py:scale"},
                     "data": {"train": "train.parquet", "features": "x", "target": "y", **overrides}})
    return job["data"], str(folder)


def _batch(dataset):
    return dataset.apply_transform({"x": np.array([1.0, 2.0]), "y": np.zeros(2, np.int64)})["x"].tolist()


def test_train_transform_runs_after_transform_on_training_batches_only(folder):
    data, base = _data(folder, eval="test.parquet", transform="fns.py:scale", train_transform="fns.py:shift")
    train, evaluation = datasets_from(data, base)
    assert _batch(train) == [11.0, 21.0]  # scale, then shift
    assert _batch(evaluation) == [10.0, 20.0]  # scale only


def test_train_transform_alone_and_the_holdout_is_not_augmented(folder):
    data, base = _data(folder, eval_fraction=0.5, train_transform="fns.py:shift")
    train, held = datasets_from(data, base)
    assert _batch(train) == [2.0, 3.0]
    assert _batch(held) == [1.0, 2.0]
    assert train.num_rows + held.num_rows == 8


@pytest.mark.parametrize("target,message", [("fns.py:missing", "has no attribute 'missing'"),
                                            ("nofile.py:f", "does not exist"),
                                            ("fns.py:NOT_A_FUNCTION", "not callable")])
def test_a_wrong_transform_fails_before_training(folder, target, message):
    data, base = _data(folder, train_transform=target)
    with pytest.raises(ConfigError, match=message):
        datasets_from(data, base)
