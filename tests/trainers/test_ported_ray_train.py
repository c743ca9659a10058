"""Ray Train scripts, written as Ray Train's docs write them, ported by changing imports:

    torch             -> tensor
    ray.train         -> trainers
    ray.train.torch   -> trainers.session
    TorchTrainer      -> trainers.Trainer

Every other line is Ray Train's, except where a comment starting with "raygrad:" says what changed
and why. Then a few in-process tests of the Ray Train names the scripts rely on.
"""
import importlib.util
import json
import os
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tensor  # was: import torch
import tensor.nn as nn  # was: import torch.nn as nn
import trainers  # was: import ray.train
import trainers.session  # was: import ray.train.torch
from dist.data import Dataset  # raygrad: Arrow/Parquet data is a dist.data.Dataset, not a ray.data Dataset
from tensor.nn import CrossEntropyLoss, MSELoss  # was: from torch.nn import ...
from tensor.optim import SGD, Adam  # was: from torch.optim import ...
from tensor.utils.data import DataLoader, TensorDataset  # was: from torch.utils.data import ...
from trainers import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig  # was: ray.train
from trainers import Trainer as TorchTrainer  # was: from ray.train.torch import TorchTrainer
from trainers.data_loader import prepare

pytestmark = pytest.mark.timeout(300)

N_ROWS = 64


def make_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_ROWS, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
    return x, y


def build_model():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


# ---------------------------------------------------------------- 1. the getting-started script
def train_func():
    # Model, Loss, Optimizer
    model = build_model()
    # [1] Prepare model.
    model = trainers.session.prepare_model(model)
    criterion = CrossEntropyLoss()
    optimizer = Adam(model.parameters(), lr=0.01)

    # Data
    x, y = make_data()
    index = tensor.arange(N_ROWS)
    train_data = TensorDataset(tensor.tensor(x), tensor.tensor(y), index)
    train_loader = DataLoader(train_data, batch_size=8, shuffle=True)
    # [2] Prepare dataloader.
    train_loader = trainers.session.prepare_data_loader(train_loader)

    # Training
    seen = []
    for epoch in range(2):
        if trainers.get_context().get_world_size() > 1:
            train_loader.sampler.set_epoch(epoch)

        for images, labels, ids in train_loader:
            outputs = model(images)
            loss = criterion(outputs, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seen.append(ids.tolist())

        # [3] Report metrics and checkpoint.
        metrics = {"loss": loss.item(), "epoch": epoch}
        with tempfile.TemporaryDirectory() as temp_checkpoint_dir:
            tensor.save(
                model.module.state_dict(),
                os.path.join(temp_checkpoint_dir, "model.pt")
            )
            trainers.report(
                metrics,
                checkpoint=trainers.Checkpoint.from_directory(temp_checkpoint_dir),
            )
        if trainers.get_context().get_world_rank() == 0:
            print(metrics)

    # not in the docs' script: what each rank read, for the test to check the sharding
    context = trainers.get_context()
    with open(os.path.join(context.get_trial_dir(), f"seen_{context.get_world_rank()}.json"), "w") as f:
        json.dump(seen, f)


def test_getting_started_script(ray_cluster, tmp_path):
    # [4] Configure scaling and resource requirements.
    scaling_config = trainers.ScalingConfig(num_workers=2, use_gpu=False)

    # [5] Launch distributed training job.
    trainer = TorchTrainer(
        train_func,
        scaling_config=scaling_config,
        run_config=trainers.RunConfig(storage_path=tmp_path, name="getting_started"),
    )
    result = trainer.fit()

    # [6] Load the trained model.
    with result.checkpoint.as_directory() as checkpoint_dir:
        model_state_dict = tensor.load(os.path.join(checkpoint_dir, "model.pt"))
        model = build_model()
        model.load_state_dict(model_state_dict)

    assert result.error is None and result.path == str(tmp_path / "getting_started")
    assert result.metrics["epoch"] == 1 and np.isfinite(result.metrics["loss"])
    assert not os.path.exists(checkpoint_dir)  # as_directory's temporary folder is gone
    copy = result.checkpoint.to_directory(tmp_path / "copy")
    assert sorted(os.listdir(copy)) == ["model.pt"]
    for name, value in tensor.load(os.path.join(copy, "model.pt")).items():
        np.testing.assert_array_equal(model.state_dict()[name].numpy(), value.numpy(), err_msg=name)
    # The DistributedSampler split every epoch between the ranks, a new order each epoch (set_epoch).
    seen = {rank: json.load(open(tmp_path / "getting_started" / f"seen_{rank}.json")) for rank in (0, 1)}
    for epoch in range(2):
        ids = [i for rank in (0, 1) for batch in seen[rank][epoch * 4:(epoch + 1) * 4] for i in batch]
        assert sorted(ids) == list(range(N_ROWS)), f"epoch {epoch}: not every sample exactly once"
    assert seen[0][:4] != seen[0][4:]


# ------------------------------------------------- 2. resume from a checkpoint, in a second fit
def train_func_resumable(config):
    x, y = make_data()
    X, Y = tensor.tensor(x), tensor.tensor(y[:, None].astype(np.float32))
    model = nn.Linear(4, 1)
    optimizer = SGD(model.parameters(), lr=0.05)
    criterion = MSELoss()

    start_epoch = 0
    checkpoint = trainers.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            model.load_state_dict(tensor.load(os.path.join(checkpoint_dir, "model.pt")))
            optimizer.load_state_dict(tensor.load(os.path.join(checkpoint_dir, "optimizer.pt")))
            start_epoch = tensor.load(os.path.join(checkpoint_dir, "extra_state.pt"))["epoch"] + 1

    model = trainers.session.prepare_model(model)
    for epoch in range(start_epoch, config["num_epochs"]):
        loss = criterion(model(X), Y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

        metrics = {"loss": loss.item(), "epoch": epoch, "start_epoch": start_epoch}
        with tempfile.TemporaryDirectory() as temp_checkpoint_dir:
            checkpoint = None
            if trainers.get_context().get_world_rank() == 0:
                tensor.save(model.state_dict(), os.path.join(temp_checkpoint_dir, "model.pt"))
                tensor.save(optimizer.state_dict(), os.path.join(temp_checkpoint_dir, "optimizer.pt"))
                tensor.save({"epoch": epoch}, os.path.join(temp_checkpoint_dir, "extra_state.pt"))
                checkpoint = Checkpoint.from_directory(temp_checkpoint_dir)
            trainers.report(metrics, checkpoint=checkpoint)


def test_resume_from_checkpoint_script(ray_cluster, tmp_path):
    first = TorchTrainer(
        train_func_resumable,
        train_loop_config={"num_epochs": 2},
        scaling_config=ScalingConfig(num_workers=1),
        run_config=RunConfig(name="first", storage_path=tmp_path),
    ).fit()
    second = TorchTrainer(
        train_func_resumable,
        train_loop_config={"num_epochs": 4},
        scaling_config=ScalingConfig(num_workers=1),
        run_config=RunConfig(name="second", storage_path=tmp_path),
        resume_from_checkpoint=first.checkpoint,
    ).fit()

    assert [r["epoch"] for r in first.metrics_history] == [0, 1]
    assert [(r["epoch"], r["start_epoch"]) for r in second.metrics_history] == [(2, 2), (3, 2)]
    assert second.metrics["loss"] < first.metrics_history[0]["loss"]
    with second.checkpoint.as_directory() as checkpoint_dir:
        assert tensor.load(os.path.join(checkpoint_dir, "extra_state.pt")) == {"epoch": 3}


# ---------------------------------------------------------------- 3. tabular data from Parquet
FEATURES = ["a", "b", "c", "d"]


def train_func_tabular(config):
    model = trainers.session.prepare_model(nn.Linear(len(FEATURES), 2))
    optimizer = Adam(model.parameters(), lr=config["lr"])
    criterion = CrossEntropyLoss()

    # raygrad: get_dataset_shard takes the batch size, and the loader it returns is iterated itself; was
    #   train_shard = ray.train.get_dataset_shard("train")
    #   for batch in train_shard.iter_torch_batches(batch_size=..., dtypes=torch.float32):
    # (the columns keep their Arrow types, float32 here, so there is no dtypes= to give).
    train_shard = trainers.get_dataset_shard("train", batch_size=config["batch_size"])
    for epoch in range(config["epochs"]):
        rows = 0
        for batch in train_shard:
            inputs = tensor.stack([batch[c] for c in FEATURES], dim=1)
            loss = criterion(model(inputs), batch["label"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            rows += len(batch["label"])
        trainers.report({"loss": loss.item(), "epoch": epoch, "rows": rows})


def test_tabular_parquet_script(ray_cluster, tmp_path):
    x, y = make_data()
    path = str(tmp_path / "train.parquet")
    pq.write_table(pa.table({**{c: x[:, i] for i, c in enumerate(FEATURES)}, "label": y}), path)
    # raygrad: was `train_dataset = ray.data.read_parquet(path)`; raygrad shards Arrow data itself
    # (a coordinator hands each rank its row ranges, and a restart resumes mid-epoch).
    train_dataset = Dataset(path)

    trainer = TorchTrainer(
        train_func_tabular,
        train_loop_config={"lr": 0.05, "batch_size": 8, "epochs": 2},
        datasets={"train": train_dataset},
        scaling_config=ScalingConfig(num_workers=2),
        run_config=RunConfig(name="tabular", storage_path=tmp_path),
    )
    result = trainer.fit()

    assert [r["epoch"] for r in result.metrics_history] == [0, 1]
    assert [r["rows"] for r in result.metrics_history] == [N_ROWS // 2] * 2  # rank 0's half of the rows
    assert result.checkpoint is None and result.best_checkpoints == []


# ------------------------- 4. hyperparameters, checkpoint policy and a failure, Ray Train's configs
def train_func_configs(config):
    x, y = make_data()
    loader = trainers.session.prepare_data_loader(
        DataLoader(TensorDataset(tensor.tensor(x), tensor.tensor(y)), batch_size=config["batch_size"], shuffle=True))
    model = build_model()
    optimizer = SGD(model.parameters(), lr=config["lr"], momentum=config["momentum"])
    start_epoch = 0
    checkpoint = trainers.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as checkpoint_dir:
            state = tensor.load(os.path.join(checkpoint_dir, "state.pt"))
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = checkpoint.get_metadata()["epoch"] + 1
    model = trainers.session.prepare_model(model)
    criterion = CrossEntropyLoss()

    context = trainers.get_context()
    for epoch in range(start_epoch, config["epochs"]):
        if context.get_world_size() > 1:
            loader.sampler.set_epoch(epoch)
        total = 0.0
        for inputs, labels in loader:
            loss = criterion(model(inputs), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        # not in a real script: rank 1 fails once, in epoch 2, to exercise FailureConfig
        if epoch == 2 and context.get_world_rank() == 1 and not os.path.exists(config["failed_once"]):
            open(config["failed_once"], "w").close()
            raise RuntimeError("worker lost")
        with tempfile.TemporaryDirectory() as checkpoint_dir:
            tensor.save({"model": model.module.state_dict(), "optimizer": optimizer.state_dict()},
                        os.path.join(checkpoint_dir, "state.pt"))
            checkpoint = Checkpoint.from_directory(checkpoint_dir)
            checkpoint.set_metadata({"epoch": epoch})
            trainers.report({"loss": total / len(loader), "epoch": epoch, "start_epoch": start_epoch},
                            checkpoint=checkpoint)


def test_configs_checkpoint_policy_and_failure_script(ray_cluster, tmp_path):
    trainer = TorchTrainer(
        train_func_configs,
        train_loop_config={"lr": 0.1, "momentum": 0.9, "batch_size": 8, "epochs": 4,
                           "failed_once": str(tmp_path / "failed_once")},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        run_config=RunConfig(
            name="configs",
            storage_path=tmp_path,
            checkpoint_config=CheckpointConfig(
                num_to_keep=2,
                checkpoint_score_attribute="loss",
                checkpoint_score_order="min",
            ),
            failure_config=FailureConfig(max_failures=1),
        ),
    )
    result = trainer.fit()

    assert (tmp_path / "failed_once").exists() and result.error is None
    assert result.path == str(tmp_path / "configs")
    # epochs 0-1, then rank 1 failed in epoch 2 and the group restarted from epoch 1's checkpoint
    assert [(r["epoch"], r["start_epoch"]) for r in result.metrics_history] == [(0, 0), (1, 0), (2, 2), (3, 2)]
    losses = [r["loss"] for r in result.metrics_history]
    kept = sorted(losses)[:2] + ([losses[-1]] if losses[-1] not in sorted(losses)[:2] else [])
    assert sorted(m["loss"] for _, m in result.best_checkpoints) == sorted(kept)  # the best 2 and the latest
    best = result.get_best_checkpoint(metric="loss", mode="min")
    assert best.metrics["loss"] == min(losses)
    assert best.get_metadata() == {"epoch": losses.index(min(losses))}
    assert result.checkpoint.get_metadata() == {"epoch": 3}
    if importlib.util.find_spec("pandas") is not None:  # optional, as in Ray Train
        assert list(result.metrics_dataframe["epoch"]) == [0, 1, 2, 3]


# ----------------------------------------------- the Ray Train names above, in process, one by one
def test_directory_checkpoint_round_trip_and_metadata(tmp_path):
    folder = tmp_path / "ckpt"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00\x01\x02")
    (folder / "sub" / "notes.txt").write_text("hello")
    (folder / "empty.txt").write_text("")
    checkpoint = Checkpoint.from_directory(folder)
    checkpoint.set_metadata({"epoch": 1})
    checkpoint.update_metadata({"step": 5})
    with checkpoint.as_directory() as same:
        assert same == str(folder)  # a folder is used where it is, as Ray Train does

    def report_folder():
        trainers.report({"loss": 0.5}, checkpoint=checkpoint)

    result = TorchTrainer(report_folder, run_config=RunConfig(name="folder", storage_path=tmp_path)).fit()
    saved = result.checkpoint
    assert saved.get_metadata() == {"epoch": 1, "step": 5}
    with saved.as_directory() as unpacked:
        assert open(os.path.join(unpacked, "weights.bin"), "rb").read() == b"\x00\x01\x02"
        assert open(os.path.join(unpacked, "sub", "notes.txt")).read() == "hello"
        assert open(os.path.join(unpacked, "empty.txt")).read() == ""
    assert not os.path.exists(unpacked)
    with pytest.raises(trainers.CheckpointError, match="never changed.*before report"):
        saved.set_metadata({"epoch": 2})
    with pytest.raises(trainers.CheckpointError, match="is not a folder"):
        Checkpoint.from_directory(tmp_path / "missing")


def report_a_dict():
    trainers.report({"loss": 1.0}, checkpoint={"w": tensor.ones(2)})
    with pytest.raises(TypeError, match="report a folder"):
        trainers.report({"loss": 1.0}, checkpoint=Checkpoint("x.safetensors"))


def test_a_dict_checkpoint_has_no_directory(tmp_path):
    result = TorchTrainer(report_a_dict, run_config=RunConfig(name="dict", storage_path=tmp_path)).fit()
    with pytest.raises(trainers.CheckpointError, match=r"holds the dict given to report.*read it with \.load\(\)"):
        with result.checkpoint.as_directory():
            pass
    assert result.checkpoint.load()["w"].tolist() == [1.0, 1.0]


def inspect_context():
    context = trainers.get_context()
    assert context.get_trial_name() == context.get_experiment_name() == "ctx"
    assert context.get_trial_dir() == context.storage_path
    assert (context.get_local_rank(), context.get_node_rank()) == (0, 0)
    assert trainers.session.get_device() == "cpu"
    loader = DataLoader(TensorDataset(tensor.arange(4)), batch_size=2)
    assert trainers.session.prepare_data_loader(loader) is loader  # one rank, on the CPU: as it is


def test_context_and_device_names(tmp_path):
    TorchTrainer(inspect_context, run_config=RunConfig(name="ctx", storage_path=tmp_path)).fit()


@pytest.mark.parametrize("shuffle", [False, True])
def test_prepare_data_loader_shards_like_a_distributed_sampler(shuffle):
    from tensor.utils.data import DistributedSampler

    dataset = TensorDataset(tensor.arange(10))
    loader = DataLoader(dataset, batch_size=2, shuffle=shuffle, drop_last=False)
    shares = []
    for rank in (0, 1):
        prepared = prepare(loader, 2, rank, "cpu", add_dist_sampler=True, move_to_device=True)
        assert isinstance(prepared.sampler, DistributedSampler) and prepared.sampler.shuffle == shuffle
        assert (prepared.batch_size, prepared.drop_last, len(prepared)) == (2, False, 3)
        prepared.sampler.set_epoch(3)
        shares.append([i for (batch,) in prepared for i in batch.tolist()])
    assert sorted(shares[0] + shares[1]) == list(range(10))
    assert prepare(loader, 2, 0, "cpu", add_dist_sampler=False, move_to_device=True) is loader
    with pytest.raises(TypeError, match="expects a tensor.utils.data.DataLoader"):
        prepare([1, 2], 2, 0, "cpu", True, True)


def test_ray_train_config_and_trainer_names():
    config = CheckpointConfig(checkpoint_score_attribute="loss", checkpoint_score_order="min")
    assert (config.score_metric, config.score_mode) == ("loss", "min")
    with pytest.raises(trainers.ConfigError, match="score_metric='acc' and checkpoint_score_attribute='loss' are "
                                                   "the same setting"):
        CheckpointConfig(score_metric="acc", checkpoint_score_attribute="loss")
    with pytest.raises(trainers.ConfigError, match="run= and run_config= are the same setting"):
        TorchTrainer(train_func, run=RunConfig(), run_config=RunConfig())
    with pytest.raises(trainers.ConfigError, match="runs your function.*drop model"):
        TorchTrainer(train_func, model=build_model)
    with pytest.raises(trainers.ConfigError, match="train_loop_config go with Trainer"):
        TorchTrainer(model=build_model, optimizer=Adam, train_data={"x": np.zeros(4)}, features="x", target="x",
                     train_loop_config={})
    with pytest.raises(trainers.ConfigError, match="Trainer needs optimizer, train_data, features, target"):
        TorchTrainer(model=build_model)
    with pytest.raises(trainers.ConfigError, match="resume_from_checkpoint must be a trainers.Checkpoint"):
        TorchTrainer(train_func, resume_from_checkpoint="runs/x").fit()
