"""The digits job written with PyTorch + Ray Train, for the README's side-by-side (line count).

    pip install torch "ray[train]" pyarrow && python docs/ray_train_digits.py [EPOCHS]

Same model, data, optimizer, schedule and 2 CPU workers as examples/vision/digits.yaml.
"""
import os
import sys
import tempfile

import numpy as np
import pyarrow.parquet as pq
import ray.train
import torch
import torch.nn as nn
import torch.nn.functional as F
from ray.train import Checkpoint, CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "vision", "data")


def load(split):
    table = pq.read_table(os.path.join(DATA, f"digits_{split}.parquet"))
    images = table.column("image").combine_chunks().flatten().to_numpy().reshape(-1, 1, 8, 8) / 16.0
    return torch.tensor(images, dtype=torch.float32), torch.tensor(table.column("label").to_numpy())


class DigitsCNN(nn.Module):
    def __init__(self, channels=32):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(2 * channels * 16, 128), nn.ReLU(),
                                  nn.Linear(128, 10))

    def forward(self, x):
        return self.head(self.features(x))


def train_loop(config):
    x_train, y_train = load("train")
    x_test, y_test = load("test")
    train_loader = ray.train.torch.prepare_data_loader(torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x_train, y_train), batch_size=32, shuffle=True))
    model = ray.train.torch.prepare_model(DigitsCNN())
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config["epochs"])
    start = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = torch.load(os.path.join(folder, "state.pt"))
        model.module.load_state_dict(state["model"]) if hasattr(model, "module") else model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start = state["epoch"] + 1
    for epoch in range(start, config["epochs"]):
        if ray.train.get_context().get_world_size() > 1:
            train_loader.sampler.set_epoch(epoch)
        model.train()
        for images, labels in train_loader:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        scheduler.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        with tempfile.TemporaryDirectory() as folder:
            plain = model.module if hasattr(model, "module") else model
            torch.save({"model": plain.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "epoch": epoch}, os.path.join(folder, "state.pt"))
            ray.train.report({"accuracy": accuracy, "loss": loss.item()}, checkpoint=Checkpoint.from_directory(folder))


if __name__ == "__main__":
    trainer = TorchTrainer(
        train_loop, train_loop_config={"epochs": int(sys.argv[1]) if len(sys.argv) > 1 else 15},
        scaling_config=ScalingConfig(num_workers=2, use_gpu=False),
        run_config=RunConfig(name="digits_ray_train", storage_path=os.path.abspath("runs"),
                             checkpoint_config=CheckpointConfig(num_to_keep=2, checkpoint_score_attribute="accuracy"),
                             failure_config=FailureConfig(max_failures=2)),
    )
    print(trainer.fit().metrics)
