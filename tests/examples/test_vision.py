"""examples/vision: the digits CNN and the small ResNet learn; the shift augmentation is a translation."""
import numpy as np
from example_helpers import load_example, train_job

import tensor

resnet = load_example("vision/resnet.py")


def test_random_shift_translates_each_image_and_fills_with_zeros():
    images = np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4) + 1
    np.random.seed(0)
    shifted = resnet.random_shift(images, max_shift=1)
    assert shifted.shape == images.shape and shifted.dtype == images.dtype
    for original, moved in zip(images[:, 0], shifted[:, 0]):
        # some (dy, dx) in [-1, 1]^2 maps the original onto the shifted image, zeros where nothing shifted in
        matches = []
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                expected = np.zeros_like(original)
                src = original[max(0, -dy):4 - max(0, dy), max(0, -dx):4 - max(0, dx)]
                expected[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
                matches.append(np.array_equal(moved, expected))
        assert any(matches)
    assert resnet.random_shift(images, max_shift=0) is images


def test_augmentation_runs_in_training_only():
    layer = resnet.RandomShift(max_shift=2)
    x = tensor.from_numpy(np.random.default_rng(0).random((8, 1, 8, 8), dtype=np.float32))
    assert layer.eval()(x) is x
    assert not np.array_equal(layer.train()(x).numpy(), x.numpy())  # 8 images: some shift is not (0, 0)


def test_resnet_job_learns(tmp_path):
    result = train_job("vision/resnet.yaml", tmp_path, ["epochs=2", "scheduler.T_max=2"])
    history = result.metrics_history
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert history[-1]["accuracy"] > 0.5  # chance: 0.1


def test_digits_cnn_job_learns(tmp_path):
    result = train_job("vision/digits.yaml", tmp_path, ["epochs=1", "scheduler.T_max=1"])
    assert result.metrics["accuracy"] > 0.7  # chance: 0.1
