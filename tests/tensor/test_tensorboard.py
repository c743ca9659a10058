"""tensor.utils.tensorboard.SummaryWriter: torch's logging calls with raygrad Tensors write the values."""
import glob
import struct

import numpy as np
import pytest

import tensor

event_pb2 = pytest.importorskip("tensorboardX.proto.event_pb2")  # a dependency; absent on the GPU machine
from tensor.utils import tensorboard  # noqa: E402  (needs tensorboardX)


def scalars(folder):
    """(tag, step, value) of every scalar in the event files under folder (TFRecord framing)."""
    found = []
    for path in sorted(glob.glob(f"{folder}/**/events.out.tfevents.*", recursive=True)):
        data, at = open(path, "rb").read(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            event = event_pb2.Event.FromString(data[at + 12:at + 12 + length])
            at += 12 + length + 4
            found += [(v.tag, event.step, v.simple_value) for v in event.summary.value if v.HasField("simple_value")]
    return found


def test_scalars_and_tensors_are_written(tmp_path):
    writer = tensorboard.SummaryWriter(str(tmp_path))
    writer.add_scalar("loss", tensor.tensor(0.25), 3)
    writer.add_scalars("acc", {"train": tensor.tensor(0.5), "eval": 0.75}, 3)
    writer.add_histogram("weights", tensor.randn(50), 3)
    writer.add_image("image", tensor.rand(3, 4, 4), 3)
    writer.close()
    written = scalars(tmp_path)
    assert ("loss", 3, 0.25) in written
    assert {("acc", 3, 0.5), ("acc", 3, 0.75)} <= set(written)


def test_tensors_inside_arguments_become_arrays():
    t = tensor.tensor([[1.0, 2.0]])
    plain = tensorboard._plain({"a": [t, tensor.tensor(3.0)], "b": (1, "x")})
    assert isinstance(plain["a"][0], np.ndarray) and plain["a"][1] == 3.0 and plain["b"] == (1, "x")


def test_add_graph_is_refused_clearly(tmp_path):
    writer = tensorboard.SummaryWriter(str(tmp_path))
    with pytest.raises(NotImplementedError, match="add_graph: TensorBoard's graph view needs a traced PyTorch"):
        writer.add_graph(tensor.nn.Linear(2, 2))
    writer.close()
