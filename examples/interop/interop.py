"""raygrad tensors with NumPy, scikit-learn and PyTorch: what is shared, what is copied.

    python examples/interop/interop.py

1. NumPy: `tensor.from_numpy(a)`, `t.numpy()` and `np.asarray(t)` share one buffer (no copy).
2. PyTorch, through DLPack: `torch.from_dlpack(t)` and `tensor.from_dlpack(torch_tensor)` share
   one buffer in both directions (checked by comparing data pointers).
3. scikit-learn: a raygrad MLP trained on the shipped digits; scikit-learn fits a logistic
   regression on the MLP's hidden features and scores the MLP's own predictions with its metrics.

PyTorch and scikit-learn are optional: a part whose library is missing says so and is skipped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

import tensor
import tensor.nn as nn
import tensor.nn.functional as F

DIGITS = Path(__file__).resolve().parents[1] / "vision" / "data"


def pointer(array: np.ndarray) -> int:
    """Address of an array's first element (raygrad tensors on the CPU hold a NumPy array in .data)."""
    return array.__array_interface__["data"][0]


# ------------------------------------------------------------------------------------------ NumPy
def numpy_interop() -> dict:
    """NumPy -> raygrad -> NumPy without a copy; a write on one side is seen on the other."""
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = tensor.from_numpy(array)            # shares array's memory
    back = np.asarray(t)                    # through Tensor.__array__: the same memory again
    array[0, 0] = 42.0                      # visible through both views
    shared = pointer(array) == pointer(t.numpy()) == pointer(back)
    print(f"numpy: from_numpy/numpy()/np.asarray share one buffer: {shared}; t[0, 0] = {t[0, 0].item()}")

    # A tensor that requires grad refuses .numpy(): the array would escape the graph. Detach first.
    weight = tensor.randn(3, requires_grad=True)
    detached = weight.detach().numpy()
    print(f"numpy: weight.detach().numpy() shares the weight's buffer: {pointer(detached) == pointer(weight.data)}")

    # NumPy functions take tensors directly (they call __array__), and results come back with from_numpy.
    norms = tensor.from_numpy(np.linalg.norm(t, axis=1))
    print(f"numpy: np.linalg.norm on a tensor -> {norms}")
    return {"shared": shared, "seen_write": t[0, 0].item() == 42.0}


# ---------------------------------------------------------------------------------------- PyTorch
def torch_interop() -> dict | None:
    """raygrad <-> PyTorch through DLPack, both ways zero-copy (None if PyTorch is not installed)."""
    try:
        import torch
    except ImportError:
        print("torch: not installed; skipping the DLPack part (pip install torch)")
        return None
    ours = tensor.arange(6, dtype=tensor.float32).reshape(2, 3)
    theirs = torch.from_dlpack(ours)                        # raygrad -> PyTorch
    to_torch = theirs.data_ptr() == pointer(ours.data)
    theirs.mul_(10)                                         # an in-place PyTorch op, seen by raygrad
    print(f"torch: torch.from_dlpack(raygrad) shares memory: {to_torch}; raygrad now sees {ours.tolist()[0]}")

    source = torch.linspace(0, 1, 5)
    back = tensor.from_dlpack(source)                       # PyTorch -> raygrad
    from_torch = pointer(back.data) == source.data_ptr()
    print(f"torch: tensor.from_dlpack(torch) shares memory: {from_torch}; {back}")
    # Autograd does not cross the boundary: each framework differentiates its own graph.
    return {"to_torch": to_torch, "from_torch": from_torch, "seen_write": ours[0, 1].item() == 10.0}


# ----------------------------------------------------------------------------------- scikit-learn
def load_digits(split: str):
    """The shipped UCI digits as (N, 64) float32 in [0, 1] and (N,) int64 labels."""
    table = pq.read_table(DIGITS / f"digits_{split}.parquet")
    images = table.column("image").combine_chunks().flatten().to_numpy().reshape(-1, 64)
    return images.astype(np.float32) / 16.0, table.column("label").to_numpy()


def train_mlp(x: np.ndarray, y: np.ndarray, epochs: int = 10, seed: int = 0) -> nn.Sequential:
    """A 64-128-10 MLP trained with AdamW; model[:2] is its feature extractor."""
    tensor.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = tensor.optim.AdamW(model.parameters(), lr=3e-3)
    order = np.random.default_rng(seed)
    for _ in range(epochs):
        for idx in np.array_split(order.permutation(len(y)), len(y) // 64):
            loss = F.cross_entropy(model(tensor.from_numpy(x[idx])), tensor.from_numpy(y[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def sklearn_interop(epochs: int = 10) -> dict | None:
    """scikit-learn on raygrad features and outputs (None if scikit-learn is not installed)."""
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
    except ImportError:
        print("sklearn: not installed; skipping the scikit-learn part (pip install scikit-learn)")
        return None
    x_train, y_train = load_digits("train")
    x_test, y_test = load_digits("test")
    model = train_mlp(x_train, y_train, epochs)
    with tensor.no_grad():
        # np.asarray(tensor) is all scikit-learn needs: estimators call it on their inputs anyway.
        features_train = np.asarray(model[:2](tensor.from_numpy(x_train)))
        features_test = np.asarray(model[:2](tensor.from_numpy(x_test)))
        predicted = model(tensor.from_numpy(x_test)).argmax(dim=1).numpy()

    mlp_accuracy = accuracy_score(y_test, predicted)
    macro_f1 = f1_score(y_test, predicted, average="macro")
    print(f"sklearn: raygrad MLP test accuracy {mlp_accuracy:.4f}, macro F1 {macro_f1:.4f}")
    print("sklearn: its confusion matrix (rows: true digit, columns: predicted)")
    print(confusion_matrix(y_test, predicted))

    probe = LogisticRegression(max_iter=2000).fit(features_train, y_train)
    probe_accuracy = probe.score(features_test, y_test)
    print(f"sklearn: LogisticRegression on the MLP's 128 hidden features: test accuracy {probe_accuracy:.4f}")
    return {"mlp_accuracy": mlp_accuracy, "probe_accuracy": probe_accuracy}


def main() -> None:
    numpy_interop()
    torch_interop()
    sklearn_interop()


if __name__ == "__main__":
    main()
