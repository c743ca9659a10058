"""The digits CNN: two 3x3 convolutions and a linear head for 8x8 (or larger) grey images."""
import tensor.nn as nn


class DigitsCNN(nn.Module):
    """(N, 1, H, W) float images -> (N, num_classes) logits."""

    def __init__(self, channels: int = 32, num_classes: int = 10, dropout: float = 0.1, image_size: int = 8):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        pooled = image_size // 2
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(2 * channels * pooled * pooled, 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x):
        return self.head(self.features(x))


def scale_pixels(batch: dict) -> dict:
    """Loader transform: the UCI digits' 0..16 pixel counts to [0, 1] (a new array; batches are read-only)."""
    return {**batch, "image": batch["image"] * (1.0 / 16.0)}
