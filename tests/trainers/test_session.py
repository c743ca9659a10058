"""The session API: clear errors outside train_loop, its rules inside, exact evaluation shards, rank prefixes."""
import io

import numpy as np
import pytest

import tensor.nn as nn
from dist.data import Dataset
from trainers import ConfigError, SessionError, Trainer, session, train_loop
from trainers.evaluation import eval_batches
from trainers.rank_output import RankPrefixedStream
from trainer_helpers import blobs, make_trainer, sgd


@pytest.mark.parametrize("call", [
    lambda: session.report({"loss": 1.0}),
    lambda: session.report_progress(step=1),
    lambda: session.get_context(),
    lambda: session.get_checkpoint(),
    lambda: session.get_dataset_shard("train"),
    lambda: session.get_eval_shard("eval"),
    lambda: session.prepare_model(nn.Linear(2, 2)),
    lambda: session.prepare_data_loader([]),
    lambda: session.get_device(),
    lambda: session.all_gather_object(1),
    lambda: session.load_rng_state({}),
])
def test_outside_a_training_function_every_call_says_where_to_call_it(call):
    with pytest.raises(SessionError, match=r"only inside a training function run by train_loop\(fn, \.\.\.\)"):
        call()


def inspect_session(config):
    ctx = session.get_context()
    assert (ctx.world_size, ctx.world_rank, ctx.local_rank, ctx.device, ctx.attempt) == (1, 0, 0, "cpu", 0)
    assert ctx.experiment_name == "inspect" and ctx.storage_path == config["path"]
    assert session.get_checkpoint() is None
    model = nn.Linear(2, 2)
    assert session.prepare_model(model) is model  # one rank: no DDP wrapper
    assert session.all_gather_object({"a": 1}) == [{"a": 1}]
    loader = session.get_dataset_shard("train", batch_size=8)
    assert session.get_dataset_shard("train", batch_size=8) is loader
    with pytest.raises(ValueError, match="one loader per dataset"):
        session.get_dataset_shard("train", batch_size=4)
    with pytest.raises(KeyError, match=r"no dataset named 'test'.*datasets: train"):
        session.get_dataset_shard("test")
    with pytest.raises(ValueError, match="'_raygrad' is reserved"):
        session.report({"x": 1}, checkpoint={"_raygrad": 1})
    with pytest.raises(TypeError, match="metrics must be numbers"):
        session.report({"x": [1, 2]})
    with pytest.raises(SessionError, match="cannot be nested"):
        train_loop(inspect_session)
    session.report({"x": np.float32(2.5)})


def test_inside_train_loop(tmp_path):
    from trainers import RunConfig

    run = RunConfig(name="inspect", storage_path=str(tmp_path), verbose=0)
    result = train_loop(inspect_session, {"path": str(tmp_path / "inspect")}, run=run,
                        datasets={"train": Dataset(blobs(64, 0))})
    assert [row["x"] for row in result.metrics_history] == [2.5]


@pytest.mark.parametrize("world_size,batch_size,part_rows", [(1, 7, 64), (3, 5, 64), (4, 64, 64), (3, 4, 7)])
def test_eval_shards_cover_every_row_once(world_size, batch_size, part_rows):
    dataset = Dataset(blobs(50, 0), part_rows=part_rows)  # part_rows=7: ranks' shares cross unit boundaries
    ids = [batch["id"] for rank in range(world_size) for batch in eval_batches(dataset, rank, world_size, batch_size)]
    assert sorted(np.concatenate(ids).tolist()) == list(range(50))
    assert all(len(b) <= batch_size for b in ids)


def test_trainer_configuration_errors_name_the_fix(tmp_path):
    data = Dataset(blobs(64, 0))
    with pytest.raises(ConfigError, match="eval_data is None"):
        make_trainer(tmp_path, "x", eval_data=None)
    with pytest.raises(ConfigError, match="unknown metric 'acuracy'"):
        make_trainer(tmp_path, "x", metrics=["acuracy"])
    with pytest.raises(ConfigError, match="loss 'cross_entropyy' is not a function of tensor.nn.functional"):
        make_trainer(tmp_path, "x", loss="cross_entropyy")
    with pytest.raises(ConfigError, match=r"train data has no column\(s\) \['label'\]"):
        Trainer(model=nn.Linear, optimizer=sgd, train_data=data, features="x", target="label")
    with pytest.raises(ConfigError, match="model must be a factory"):
        Trainer(model=nn.Linear(8, 2), optimizer=sgd, train_data=data, features="x", target="y")
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1"):
        Trainer(model=nn.Linear, optimizer=sgd, train_data=data, features="x", target="y", batch_size=0)


def test_rank_prefix_writes_whole_lines_only():
    target = io.StringIO()
    stream = RankPrefixedStream(target, "[rank 1] ")
    stream.write("hello ")
    assert target.getvalue() == ""
    stream.write("world\nsecond\nthi")
    stream.close_partial()
    assert target.getvalue() == "[rank 1] hello world\n[rank 1] second\n[rank 1] thi\n"
