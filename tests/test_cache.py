"""The model cache: atomic writes, checksum on load, corrupt entries rebuilt, no
unpickling, safe under two processes writing one key."""
import multiprocessing as mp
import pickle
import warnings

import pytest
import torch

from ipkit import cache, models


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("IPKIT_CACHE", str(tmp_path / "cache"))


def _train_counter():
    calls = []

    def train(model):
        calls.append(1)
        with torch.no_grad():
            model.head.bias.fill_(len(calls))
        return {"acc": 0.5}

    return calls, train


def _build():
    return models.build("mlp", 3, (1, 4, 4), seed=0)


def test_second_call_loads_instead_of_training():
    calls, train = _train_counter()
    a = cache.cached_model("unit", {"x": 1}, _build, train)
    b = cache.cached_model("unit", {"x": 1}, _build, train)
    assert len(calls) == 1 and torch.equal(a.head.bias, b.head.bias)
    assert b.ipkit_meta == {"acc": 0.5} and a.ipkit_key == b.ipkit_key
    cache.cached_model("unit", {"x": 2}, _build, train)
    assert len(calls) == 2


def test_key_changes_with_any_parameter():
    assert cache.key("r", {"a": 1, "b": [1, 2]}) == cache.key("r", {"b": [1, 2], "a": 1})
    assert cache.key("r", {"a": 1}) != cache.key("r", {"a": 2}) != cache.key("s", {"a": 2})


def test_write_is_atomic_and_leaves_no_temp_files():
    path = cache.save("k1", {"w": torch.arange(6.0)}, {"recipe": "t"})
    assert path.exists() and not list(path.parent.glob(".*.tmp"))
    tensors, meta = cache.load("k1")
    assert torch.equal(tensors["w"], torch.arange(6.0)) and meta["recipe"] == "t"


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_entry_is_rebuilt_with_warning(damage):
    calls, train = _train_counter()
    model = cache.cached_model("unit", {"x": 1}, _build, train)
    path = cache._path(model.ipkit_key)
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    else:
        path.write_bytes(blob[:-3] + bytes([blob[-3] ^ 0xFF]) + blob[-2:])
    assert not [e for e in cache.entries() if e.ok]
    with pytest.warns(UserWarning, match="rebuilt"):
        cache.cached_model("unit", {"x": 1}, _build, train)
    assert len(calls) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.cached_model("unit", {"x": 1}, _build, train)
    assert len(calls) == 2


def test_pickle_in_cache_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    cache.cache_dir().mkdir(parents=True, exist_ok=True)
    cache._path("evil").write_bytes(pickle.dumps(Bomb()))
    with pytest.warns(UserWarning):
        assert cache.load("evil") is None
    assert not marker.exists()


def _writer(folder: str, value: float) -> None:
    import os

    os.environ["IPKIT_CACHE"] = folder
    for _ in range(30):
        cache.save("shared", {"w": torch.full((20000,), value)}, {"recipe": "race", "value": value})


def test_two_processes_writing_one_key_do_not_corrupt_it():
    folder = str(cache.cache_dir())
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(folder, v)) for v in (1.0, 2.0)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    tensors, meta = cache.load("shared")
    assert torch.all(tensors["w"] == meta["value"])
    assert not list(cache.cache_dir().glob(".*.tmp"))


def test_clear_removes_entries():
    _, train = _train_counter()
    cache.cached_model("a", {}, _build, train)
    cache.cached_model("b", {}, _build, train)
    assert cache.clear("a") == 1 and [e.recipe for e in cache.entries()] == ["b"]
    assert cache.clear() == 1 and cache.entries() == []
