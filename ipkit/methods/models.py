"""A registry of image classifiers sized for 8-32 pixel inputs.

Every model is a :class:`Net`: a ``body`` that maps [0, 1] images to a feature vector and a
linear ``head`` that maps features to logits. Studies rely on that split (last-layer
Laplace, last-layer fine-tuning, feature similarity). ``Net.spec`` holds the arguments of
:func:`build`, so the model cache can rebuild the architecture before loading weights.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..core.catalog import ARCHS


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` that, when no gradient flows through it, pools a contiguous CPU
    batch in the channels_last layout and hands the result back contiguous.

    Prediction runs models in the contiguous layout, where PyTorch's CPU max-pool kernel is
    about 4x slower than its channels_last kernel (a 100x16x28x28 batch, one thread: 6.6 ms
    against 1.7 ms including both layout copies). A maximum does not depend on the order in
    which it is taken, so the outputs are the same bit for bit (``tests/methods/test_models.py``).
    With gradients (training, attacks) the copies' backward costs more than it saves, so
    the pooling is torch's own."""

    def forward(self, x: Tensor) -> Tensor:
        if (
            x.device.type != "cpu"
            or x.dim() != 4
            or self.return_indices
            or not x.is_contiguous()
            or (torch.is_grad_enabled() and x.requires_grad)
        ):
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


class Net(nn.Module):
    """``head(body(x))``, with inputs in [0, 1] rescaled to [-1, 1] inside the body."""

    def __init__(self, body: nn.Module, head: nn.Linear, spec: dict, dropout: float = 0.0):
        super().__init__()
        self.body = body
        self.drop = nn.Dropout(dropout)
        self.head = head
        self.spec = spec

    def features(self, x: Tensor) -> Tensor:
        """The penultimate feature vector (input of the linear head)."""
        return self.body(x * 2.0 - 1.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.drop(self.features(x)))


def _mlp(c: int, h: int, w: int, dropout: float) -> tuple[nn.Module, int]:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(c * h * w, 256), nn.ReLU(), nn.Dropout(dropout), nn.Linear(256, 128), nn.ReLU()
    ), 128


def _cnn(c: int, h: int, w: int, dropout: float) -> tuple[nn.Module, int]:
    return nn.Sequential(
        nn.Conv2d(c, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        MaxPool2d(2, ceil_mode=True),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        MaxPool2d(2, ceil_mode=True),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(32 * 16, 128),
        nn.ReLU(),
        nn.Dropout(dropout),
    ), 128


def _lenet5(c: int, h: int, w: int, dropout: float) -> tuple[nn.Module, int]:
    if (h, w) not in ((28, 28), (32, 32)):
        raise ValueError(f"lenet5 needs 28x28 or 32x32 inputs, got {h}x{w}: choose arch 'cnn'")
    pad = 2 if h == 28 else 0
    return nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=pad),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(120, 84),
        nn.ReLU(),
    ), 84


def _vgg(c: int, h: int, w: int, dropout: float) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    for cin, cout, pool in (
        (c, 32, False),
        (32, 32, True),
        (32, 64, False),
        (64, 64, True),
        (64, 128, False),
        (128, 128, True),
    ):
        layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
        if pool:
            layers.append(MaxPool2d(2, ceil_mode=True))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), 128


def _resnet18(c: int, h: int, w: int, dropout: float) -> tuple[nn.Module, int]:
    from torchvision.models import resnet18

    m = resnet18(num_classes=10)
    m.conv1 = nn.Conv2d(c, 64, 3, stride=1, padding=1, bias=False)
    m.maxpool = nn.Identity()
    m.fc = nn.Identity()
    return m, 512


def _mobilenetv2(c: int, h: int, w: int, dropout: float) -> tuple[nn.Module, int]:
    from torchvision.models import mobilenet_v2

    m = mobilenet_v2(num_classes=10)
    first = m.features[0][0]
    m.features[0][0] = nn.Conv2d(c, first.out_channels, 3, stride=1, padding=1, bias=False)
    return nn.Sequential(m.features, nn.AdaptiveAvgPool2d(1), nn.Flatten()), 1280


_BUILDERS: dict[str, Callable[[int, int, int, float], tuple[nn.Module, int]]] = {
    "mlp": _mlp,
    "cnn": _cnn,
    "lenet5": _lenet5,
    "vgg": _vgg,
    "resnet18": _resnet18,
    "mobilenetv2": _mobilenetv2,
}


def build(
    arch: str, num_classes: int, in_shape: tuple[int, int, int], dropout: float = 0.0, seed: int | None = None
) -> Net:
    """Build a freshly initialised ``arch`` for ``in_shape`` (C, H, W) images.

    ``dropout`` is applied before the head (and inside the hidden layers of mlp, cnn and
    lenet5), which is what MC dropout samples. ``seed`` fixes the initial weights, drawn
    from a forked copy of torch's global generator (its state is left as it was); without
    a seed they are drawn from the global generator.
    """
    if arch not in _BUILDERS:
        raise ValueError(f"unknown architecture '{arch}': choose one of {', '.join(ARCHS)}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
    c, h, w = (int(v) for v in in_shape)
    spec = dict(arch=arch, num_classes=int(num_classes), in_shape=[c, h, w], dropout=float(dropout))
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.random.default_generator.manual_seed(seed)
        body, width = _BUILDERS[arch](c, h, w, dropout)
        return Net(body, nn.Linear(width, num_classes), spec, dropout)


def rebuild(spec: dict) -> Net:
    """Build an untrained model with the architecture described by ``spec`` (a ``Net.spec``)."""
    return build(spec["arch"], spec["num_classes"], tuple(spec["in_shape"]), spec.get("dropout", 0.0))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
