"""A small ResNet for the 8x8 digits, with BatchNorm, and random-shift augmentation for training.

    raygrad train examples/vision/resnet.yaml

Two residual stages (8x8 with `width` channels, then 4x4 with 2 * width), global average pooling
and a linear head. Each residual block is conv-BN-ReLU-conv-BN plus its input (a 1x1 strided conv
when the shape changes), then ReLU: He et al., "Deep Residual Learning for Image Recognition", 2015.

Augmentation: while training, each image is moved by up to `max_shift` pixels in each direction,
its own random amount, the pixels shifted in being 0 (the background). Digits are not flipped: a
mirrored 2, 3, 4, 5, 6, 7 or 9 is not that digit any more.
"""
import numpy as np

import tensor
import tensor.nn as nn
import tensor.nn.functional as F
from tensor.backend import array_module


def random_shift(images, max_shift: int = 1):
    """(N, C, H, W) NumPy or CuPy array -> a new one, each image translated by its own (dy, dx).

    dy and dx are uniform integers in [-max_shift, max_shift], drawn from NumPy's global generator:
    the trainer seeds it per rank and saves its state in checkpoints, so a resumed run repeats them.
    """
    if max_shift <= 0:
        return images
    xp = array_module(images)
    n, c, h, w = images.shape
    s = max_shift
    padded = xp.pad(images, ((0, 0), (0, 0), (s, s), (s, s)))  # zeros around: what shifts in is background
    dy, dx = (xp.asarray(np.random.randint(0, 2 * s + 1, size=n)) for _ in range(2))
    rows = (dy[:, None] + xp.arange(h))[:, None, :, None]  # (N, 1, H, 1): the window's rows in padded
    cols = (dx[:, None] + xp.arange(w))[:, None, None, :]  # (N, 1, 1, W)
    return padded[xp.arange(n)[:, None, None, None], xp.arange(c)[None, :, None, None], rows, cols]


class RandomShift(nn.Module):
    """Training-time augmentation as a layer: random_shift in train() mode, the identity in eval().

    It sits in the model, not in the job's loader transform, because that transform also runs on
    the evaluation data, which must stay as it is.
    """

    def __init__(self, max_shift: int = 1):
        super().__init__()
        self.max_shift = max_shift

    def forward(self, x):
        if not self.training or self.max_shift <= 0:
            return x
        return tensor.Tensor(random_shift(x.detach().data, self.max_shift))  # an input: no gradient needed

    def extra_repr(self):
        return f"max_shift={self.max_shift}"


class BasicBlock(nn.Module):
    """relu(x + bn(conv(relu(bn(conv(x)))))); stride 2 halves H and W, with a 1x1 conv on the shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class DigitsResNet(nn.Module):
    """(N, 1, H, W) float images in [0, 1] -> (N, num_classes) logits."""

    def __init__(self, width: int = 16, num_classes: int = 10, max_shift: int = 1, dropout: float = 0.0):
        super().__init__()
        self.augment = RandomShift(max_shift)
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stages = nn.Sequential(BasicBlock(width, width), BasicBlock(width, 2 * width, stride=2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(2 * width, num_classes))

    def forward(self, x):
        return self.head(self.stages(self.stem(self.augment(x))))
