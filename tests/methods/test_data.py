"""Datasets and splits: the embedded data, seeded disjoint splits, torchvision loaders on
small files written here, and the one-line error for data missing offline."""

import pickle
import struct

import numpy as np
import pytest
import torch

from ipkit.methods import data


def test_mnist5k_is_real_mnist_subset():
    ds = data.load("mnist5k")
    assert ds.train.x.shape == (5000, 1, 28, 28)
    assert ds.train.x.min() >= 0
    assert ds.train.x.max() <= 1
    assert torch.bincount(ds.train.y).tolist() == [500] * 10


def _ids(part):
    return {hash(row.numpy().tobytes()) for row in (part.x.cpu() * 255).round().to(torch.uint8)}


def test_splits_disjoint_and_reproducible():
    a = data.split("mnist5k", seed=3, device="cpu")
    b = data.split("mnist5k", seed=3, device="cpu")
    c = data.split("mnist5k", seed=4, device="cpu")
    assert torch.equal(a.owner.x, b.owner.x)
    assert torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.owner.x, c.owner.x)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    owner, attacker, test = _ids(a.owner), _ids(a.attacker), _ids(a.test)
    assert not owner & attacker
    assert not owner & test
    assert not attacker & test
    assert len(a.owner) + len(a.attacker) + len(a.test) == 5000


def test_unknown_dataset_names_choices():
    with pytest.raises(data.DataError, match="choose one of"):
        data.load("imagenet")


def test_missing_offline_names_root_and_both_fixes(tmp_path, monkeypatch):
    monkeypatch.delenv("IPKIT_DOWNLOAD", raising=False)
    with pytest.raises(data.DataError) as err:
        data.load("cifar10", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg
    assert "IPKIT_DOWNLOAD=1" in msg
    assert "cifar10-jpeg.tar.gz" in msg
    assert "\n" not in msg


def _write_idx(path, arr):
    dims = arr.shape
    code = 0x08
    header = struct.pack(">HBB", 0, code, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    path.write_bytes(header + arr.astype(np.uint8).tobytes())


def _mnist_files(root, cut=0):
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 12), ("t10k", 5)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)))
    if cut:
        path = raw / "train-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:-cut])


def test_torchvision_mnist_reads_idx_files(tmp_path):
    _mnist_files(tmp_path)
    ds = data.load("mnist", root=tmp_path, download=False)
    assert ds.train.x.shape == (12, 1, 28, 28)
    assert ds.test.x.shape == (5, 1, 28, 28)
    assert ds.train.x.max() <= 1.0
    assert ds.train.y.dtype == torch.int64


def test_torchvision_cifar10_reads_batches(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}", 4) for i in range(1, 6)] + [("test_batch", 3)]:
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, n))}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    # The files are ours, so their md5 cannot match the real release's.
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: True)
    ds = data.load("cifar10", root=tmp_path, download=False)
    assert ds.train.x.shape == (20, 3, 32, 32)
    assert ds.test.x.shape == (3, 3, 32, 32)
    assert ds.classes[0] == "c0"


def test_cifar10_image_folder_decoded_once(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("airplane", "cat"):
            d = tmp_path / "cifar10" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i:04d}.png")
    ds = data.load("cifar10", root=tmp_path, download=False)
    assert ds.train.x.shape == (6, 3, 32, 32)
    assert ds.classes == ["airplane", "cat"]
    assert ds.train.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert (tmp_path / "cifar10" / "ipkit-uint8.safetensors").exists()
    data._LOADED.clear()
    again = data.load("cifar10", root=tmp_path, download=False)
    assert torch.equal(again.train.x, ds.train.x)


@pytest.mark.parametrize("name", ["mnist5k", "digits"])
def test_split_sizes_match_the_split_without_loading(name):
    s = data.split(name, seed=0, device="cpu", max_test=300)
    sizes = data.split_sizes(name, max_test=300)
    assert sizes == {"owner": len(s.owner), "attacker": len(s.attacker), "test": len(s.test)}


@pytest.mark.parametrize(
    "name, make, named",
    [
        ("cifar10", lambda r: (r / "cifar-10-batches-py").mkdir(), "data_batch_1 is missing"),
        ("mnist", lambda r: (r / "MNIST" / "raw").mkdir(parents=True), "train-images-idx3-ubyte is missing"),
        ("svhn", lambda r: (r / "train_32x32.mat").write_bytes(b""), "train_32x32.mat is empty"),
        ("cifar10", lambda r: (r / "cifar10" / "train" / "cat").mkdir(parents=True), "holds no"),
    ],
)
@pytest.mark.parametrize("download", [False, True])
def test_broken_data_folder_is_caught_before_the_run(tmp_path, name, make, named, download):
    make(tmp_path)
    with pytest.raises(data.DataError) as err:
        data.available(name, root=tmp_path, download=download)
    msg = str(err.value)
    assert "is broken" in msg
    assert named in msg
    assert str(tmp_path) in msg
    assert "\n" not in msg


def test_download_without_network_says_the_download_failed(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(data.DataError) as err:
        data.load("cifar10", root=tmp_path, download=True)
    msg = str(err.value)
    assert "downloading dataset 'cifar10'" in msg
    assert "failed" in msg
    assert "name resolution" in msg
    assert "set IPKIT_DOWNLOAD=1" not in msg
    assert "\n" not in msg


def _image_tree(root, counts=(("train", 3), ("test", 2)), classes=("airplane", "cat"), fmt="png"):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in counts:
        for cls in classes:
            d = root / "cifar10" / split / cls
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(d / f"{i:04d}.{fmt}")


def test_decoded_cache_follows_a_changed_image_tree(tmp_path):
    _image_tree(tmp_path)
    assert len(data.load("cifar10", root=tmp_path, download=False).train) == 6
    data._LOADED.clear()
    _image_tree(tmp_path, counts=(("train", 4),), classes=("airplane", "cat", "dog"))
    ds = data.load("cifar10", root=tmp_path, download=False)
    assert len(ds.train) == 12
    assert ds.classes == ["airplane", "cat", "dog"]
    assert torch.bincount(ds.train.y).tolist() == [4, 4, 4]


@pytest.mark.parametrize(
    "foreign",
    [
        {"images": torch.zeros(2, 3, 32, 32, dtype=torch.uint8)},
        {
            "train_x": torch.zeros(6, 32, 32, 3),
            "train_y": torch.zeros(6, dtype=torch.int64),
            "test_x": torch.zeros(4, 3, 32, 32, dtype=torch.uint8),
            "test_y": torch.zeros(4, dtype=torch.int64),
        },
        {
            "train_x": torch.zeros(6, 3, 32, 32, dtype=torch.uint8),
            "train_y": torch.full((6,), 9),
            "test_x": torch.zeros(4, 3, 32, 32, dtype=torch.uint8),
            "test_y": torch.zeros(4, dtype=torch.int64),
        },
    ],
)
def test_decoded_cache_with_a_wrong_schema_is_rebuilt(tmp_path, foreign):
    from safetensors.torch import save_file

    _image_tree(tmp_path)
    data.load("cifar10", root=tmp_path, download=False)
    data._LOADED.clear()
    cached = tmp_path / "cifar10" / data.DECODED
    from safetensors import safe_open

    with safe_open(str(cached), framework="pt") as f:
        tree = f.metadata()["tree"]
    save_file(foreign, str(cached), metadata={"tree": tree})
    ds = data.load("cifar10", root=tmp_path, download=False)
    assert ds.train.x.shape == (6, 3, 32, 32)
    assert ds.train.y.tolist() == [0, 0, 0, 1, 1, 1]


def test_truncated_jpeg_is_named(tmp_path):
    _image_tree(tmp_path, fmt="jpg")
    bad = tmp_path / "cifar10" / "train" / "cat" / "0001.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(data.DataError, match=r"cannot decode .*cat/0001\.jpg"):
        data.load("cifar10", root=tmp_path, download=False)


def _cifar_batches(root):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(pickle.dumps({"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8)}))
    return folder


def _mat(path, element_sizes, cut=0):
    blob = b"MATLAB 5.0 MAT-file".ljust(128, b" ")
    for n in element_sizes:
        blob += struct.pack("<II", 14, n) + b"\0" * (n + (-n % 8))
    path.write_bytes(blob[: len(blob) - cut])


@pytest.mark.parametrize(
    "name, make, named",
    [
        ("mnist", lambda r: _mnist_files(r, cut=100), "where its header promises 9,424 (truncated)"),
        (
            "cifar10",
            lambda r: (lambda f: (f / "data_batch_3").write_bytes((f / "data_batch_3").read_bytes()[:-40]))(
                _cifar_batches(r)
            ),
            "data_batch_3 is cut short",
        ),
        (
            "svhn",
            lambda r: (_mat(r / "train_32x32.mat", [40, 13]), _mat(r / "test_32x32.mat", [40], cut=9)),
            "test_32x32.mat is",
        ),
    ],
)
def test_a_truncated_data_file_is_named_before_the_run(tmp_path, name, make, named):
    """Files cut short by what their format fixes (IDX dimensions, pickle's STOP, MATLAB
    element sizes) are caught by the check before any work, naming the file."""
    make(tmp_path)
    with pytest.raises(data.DataError) as err:
        data.available(name, root=tmp_path, download=False)
    assert "is broken" in str(err.value)
    assert named in str(err.value)


def test_complete_data_files_pass_the_check(tmp_path):
    _mnist_files(tmp_path)
    _cifar_batches(tmp_path)
    _mat(tmp_path / "train_32x32.mat", [40, 13])
    _mat(tmp_path / "test_32x32.mat", [8])
    for name in ("mnist", "cifar10", "svhn"):
        data.available(name, root=tmp_path, download=False)


def test_a_downloaded_archive_is_checked_and_named(tmp_path):
    import io
    import tarfile

    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        payload = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
        info = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(data.DataError, match=r"is there but not unpacked: tar -xzf .*cifar-10-python"):
        data.available("cifar10", root=tmp_path, download=False)
    archive.write_bytes(archive.read_bytes()[:5000])
    with pytest.raises(data.DataError, match=r"archive .*cifar-10-python\.tar\.gz is truncated or damaged"):
        data.available("cifar10", root=tmp_path, download=False)


def test_a_jpeg_that_does_not_decode_is_named_before_the_run(tmp_path):
    _image_tree(tmp_path, fmt="jpg")
    bad = tmp_path / "cifar10" / "test" / "airplane" / "0001.jpg"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(data.DataError, match=r"cannot decode .*airplane/0001\.jpg"):
        data.available("cifar10", root=tmp_path, download=False)
