"""tensor.utils.data: TensorDataset, DataLoader, random_split and default_collate, as in PyTorch."""
import numpy as np
import pytest

import tensor
from tensor.errors import ShapeError
from tensor.utils.data import DataLoader, Dataset, Subset, TensorDataset, default_collate, random_split

from helpers import make, to_numpy


def _dataset(device, n=10):
    x = make(np.arange(n * 3, dtype=np.float32).reshape(n, 3), device)
    y = make(np.arange(n), device)
    return TensorDataset(x, y)


def test_batches_cover_every_sample_once_in_order_without_shuffle(device):
    batches = list(DataLoader(_dataset(device), batch_size=4))
    assert [len(yb) for _, yb in batches] == [4, 4, 2]
    assert np.concatenate([to_numpy(yb) for _, yb in batches]).tolist() == list(range(10))
    xb, yb = batches[1]
    np.testing.assert_array_equal(to_numpy(xb), np.arange(12, 24).reshape(4, 3))
    assert len(DataLoader(_dataset(device), batch_size=4)) == 3


def test_shuffle_is_a_permutation_fixed_by_manual_seed_and_drop_last(device):
    def epoch():
        tensor.manual_seed(3)
        return [to_numpy(yb).tolist() for _, yb in DataLoader(_dataset(device), batch_size=3, shuffle=True,
                                                               drop_last=True)]

    first = epoch()
    assert first == epoch() and len(first) == 3 and all(len(b) == 3 for b in first)
    seen = sorted(v for b in first for v in b)
    assert len(set(seen)) == 9 and set(seen) <= set(range(10))  # nine distinct samples, one dropped
    assert first != [[0, 1, 2], [3, 4, 5], [6, 7, 8]]  # shuffled (seed 3 gives another order)
    assert len(DataLoader(_dataset(device), batch_size=3, drop_last=True)) == 3


def test_a_custom_dataset_collates_fields_and_dicts():
    class Pairs(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return {"x": np.full(2, i, np.float32), "label": i}, i * 0.5

    (fields, halves), = list(DataLoader(Pairs(), batch_size=5))
    np.testing.assert_array_equal(fields["x"].numpy(), np.repeat(np.arange(5, dtype=np.float32), 2).reshape(5, 2))
    assert fields["label"].tolist() == [0, 1, 2, 3, 4] and halves.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert default_collate([tensor.ones(2), tensor.zeros(2)]).shape == (2, 2)


def test_random_split_by_counts_and_fractions(device):
    ds = _dataset(device)
    tensor.manual_seed(0)
    a, b = random_split(ds, [7, 3])
    assert isinstance(a, Subset) and (len(a), len(b)) == (7, 3)
    assert sorted(a.indices + b.indices) == list(range(10))
    c, d, e = random_split(ds, [0.5, 0.3, 0.2])
    assert (len(c), len(d), len(e)) == (5, 3, 2)
    xb, yb = next(iter(DataLoader(a, batch_size=7)))
    assert sorted(yb.tolist()) == sorted(a.indices)


def test_errors_name_the_value_and_the_fix(device):
    with pytest.raises(ShapeError, match="share their first dim"):
        TensorDataset(make(np.zeros((3, 2)), device), make(np.zeros(4), device))
    with pytest.raises(ValueError, match="num_workers must be an int >= 0"):
        DataLoader(_dataset(device), num_workers=-1)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        DataLoader(_dataset(device), batch_size=0)
    with pytest.raises(ValueError, match="lengths"):
        random_split(_dataset(device), [5, 6])
    with pytest.raises(TypeError, match="cannot batch samples of type object"):
        default_collate([object(), object()])


def test_default_collate_nested_fields_come_back_as_torch_gives_them():
    """Inside a collated tuple/list field the batch is a tuple (PyTorch zips the samples), so are strings."""
    torch = pytest.importorskip("torch")
    batch = [(i, ["s%d" % i, float(i)]) for i in range(3)]
    want, got = torch.utils.data.default_collate(batch), default_collate(batch)
    assert got[1][0] == want[1][0] == ("s0", "s1", "s2")
    assert type(got) is type(want) and type(got[1]) is type(want[1])
    assert got[0].tolist() == want[0].tolist() and got[1][1].tolist() == want[1][1].tolist()
    assert default_collate([{"name": "a"}, {"name": "b"}]) == {"name": ["a", "b"]}
