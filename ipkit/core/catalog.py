"""The datasets and architectures ipkit knows, by name, and which architecture fits which
images: what parameter checks need before any model or data loads (no torch here).

:mod:`ipkit.methods.data` and :mod:`ipkit.methods.models` implement these names.
"""

from __future__ import annotations

DATASETS: dict[str, str] = {
    "mnist5k": "embedded 5,000-image MNIST subset (28x28 gray, 10 classes)",
    "digits": "scikit-learn digits (8x8 gray, 10 classes, 1,797 images)",
    "mnist": "torchvision MNIST (28x28 gray, 70,000 images)",
    "fashionmnist": "torchvision FashionMNIST (28x28 gray, 70,000 images)",
    "cifar10": "CIFAR-10 (32x32 RGB, 60,000 images): torchvision or ImageFolder JPEG tree",
    "cifar100": "torchvision CIFAR-100 (32x32 RGB, 100 classes)",
    "svhn": "torchvision SVHN (32x32 RGB street-view digits)",
}

#: Each dataset's image shape (channels, height, width).
SHAPES: dict[str, tuple[int, int, int]] = {
    "mnist5k": (1, 28, 28),
    "digits": (1, 8, 8),
    "mnist": (1, 28, 28),
    "fashionmnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
    "svhn": (3, 32, 32),
}

ARCHS: dict[str, str] = {
    "mlp": "two-layer perceptron (any input size)",
    "cnn": "small two-block CNN with batch norm (any input size)",
    "lenet5": "LeNet-5 (28 or 32 pixel inputs)",
    "vgg": "VGG-style 6-conv network with batch norm",
    "resnet18": "torchvision ResNet-18, 3x3 stem without max-pool",
    "mobilenetv2": "torchvision MobileNetV2, stride-1 stem",
}

#: The image sides an architecture accepts, where not every side (a test builds each
#: architecture on each dataset's shape and checks this table against a forward pass).
SIDES: dict[str, tuple[int, ...]] = {"lenet5": (28, 32)}


def fits(arch: str, dataset: str) -> str | None:
    """Why ``arch`` cannot take ``dataset``'s images, or None when it can."""
    side = SHAPES[dataset][1]
    if arch in SIDES and side not in SIDES[arch]:
        return f"{arch} takes {' or '.join(map(str, SIDES[arch]))} pixel images, and {dataset}'s are {side}x{side}"
    return None
