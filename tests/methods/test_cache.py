"""The model cache: atomic writes, a checksum over header and data checked on load, any
unusable entry rebuilt with a one-line report, no unpickling, safe under two processes
writing one key, temp files of interrupted writes shown and swept."""

import errno
import multiprocessing as mp
import os
import pickle
import struct
import subprocess
import sys
import time

import pytest
import torch

from ipkit.methods import cache, models


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
    assert len(calls) == 1
    assert torch.equal(a.head.bias, b.head.bias)
    assert b.ipkit_meta == {"acc": 0.5}
    assert a.ipkit_key == b.ipkit_key
    cache.cached_model("unit", {"x": 2}, _build, train)
    assert len(calls) == 2


def test_key_changes_with_any_parameter():
    assert cache.key("r", {"a": 1, "b": [1, 2]}) == cache.key("r", {"b": [1, 2], "a": 1})
    assert cache.key("r", {"a": 1}) != cache.key("r", {"a": 2}) != cache.key("s", {"a": 2})


def test_a_key_is_pinned(monkeypatch):
    """The key of fixed inputs on one CPU thread, as ipkit 0.1.0 computed it before the
    package was layered: a warm cache of many hours of trainings depends on it."""
    for name, value in {"IPKIT_DEVICE": "cpu", "IPKIT_CPU_BF16": "0", "IPKIT_THREADS": "1"}.items():
        monkeypatch.setenv(name, value)
    params = {"dataset": "digits", "arch": "mlp", "epochs": 3, "lr": 1e-3, "seeds": [0, 1.0]}
    assert cache.key("victim", params) == "108d8924bcd6ce091bd3922f"


def test_key_includes_the_cpu_thread_count_and_bf16_training(monkeypatch):
    monkeypatch.setenv("IPKIT_CPU_BF16", "0")
    monkeypatch.setenv("IPKIT_THREADS", "1")
    one = cache.key("r", {"a": 1})
    monkeypatch.setenv("IPKIT_THREADS", "2")
    assert cache.key("r", {"a": 1}) != one
    assert cache.compute() == "cpu-2"
    fp32 = cache.key("r", {"a": 1})
    monkeypatch.setenv("IPKIT_CPU_BF16", "1")
    assert cache.compute() == "cpu-2-bf16"
    assert cache.key("r", {"a": 1}) != fp32


@pytest.mark.parametrize(
    "env, threads", [({"IPKIT_THREADS": "2", "OMP_NUM_THREADS": "1"}, 2), ({"OMP_NUM_THREADS": "1"}, 1), ({}, None)]
)
def test_the_key_names_the_thread_count_the_trainer_will_use(monkeypatch, env, threads):
    """The compute part of a key is fixed before anything trains and does not move when the
    trainer sets torch's thread count (a cluster's OMP_NUM_THREADS=1 once made every stolen
    model name a victim key other than the one the victim was stored under)."""
    import torch

    from ipkit.methods import train

    monkeypatch.setenv("IPKIT_CPU_BF16", "0")
    for name in ("IPKIT_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # whatever the process started with
        first = cache.compute()
        train.use_cpu_threads()
        assert cache.compute() == first == f"cpu-{threads or train.cpu_threads()}"
        assert torch.get_num_threads() == train.cpu_threads()
    finally:
        torch.set_num_threads(before)


def test_write_is_atomic_and_leaves_no_temp_files():
    path = cache.save("k1", {"w": torch.arange(6.0)}, {"recipe": "t"})
    assert path.exists()
    assert not list(path.parent.glob(".*.tmp"))
    tensors, meta = cache.load("k1")
    assert torch.equal(tensors["w"], torch.arange(6.0))
    assert meta["recipe"] == "t"


def _corrupt_lines(capsys) -> list[str]:
    return [ln for ln in capsys.readouterr().err.splitlines() if cache.CORRUPT_LINE.fullmatch(ln)]


def _relabel_dtype(path):
    """Change the first tensor's dtype in the header (F32 -> I32, same size), keeping the digest."""
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = blob[8 : 8 + n].replace(b'"F32"', b'"I32"', 1)
    assert len(header) == n
    path.write_bytes(blob[:8] + header + blob[8 + n :])


@pytest.mark.parametrize("damage", ["truncate", "flip", "dtype", "directory", "pickle", "garbage"])
def test_corrupt_entry_is_rebuilt_with_one_line(damage, capsys):
    calls, train = _train_counter()
    model = cache.cached_model("unit", {"x": 1}, _build, train)
    path = cache.entry_path(model.ipkit_key)
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        path.write_bytes(blob[:-3] + bytes([blob[-3] ^ 0xFF]) + blob[-2:])
    elif damage == "dtype":
        _relabel_dtype(path)
    elif damage == "directory":
        path.unlink()
        (path / "inside").mkdir(parents=True)
    elif damage == "pickle":
        path.write_bytes(pickle.dumps({"head.bias": [1.0, 2.0]}))
    else:
        path.write_bytes(b"\xff" * 7)
    listed = cache.entries()
    assert [e.ok for e in listed] == [False]
    assert listed[0].problem
    cache.cached_model("unit", {"x": 1}, _build, train)
    assert len(calls) == 2
    lines = _corrupt_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith(f"corrupt cache entry {model.ipkit_key} (")
    assert path.is_file()
    assert cache.entries()[0].ok
    cache.cached_model("unit", {"x": 1}, _build, train)
    assert len(calls) == 2
    assert not _corrupt_lines(capsys)


def test_entry_that_does_not_fit_the_model_is_rebuilt(capsys):
    calls, train = _train_counter()
    k = cache.key("unit", {"x": 1})
    wrong = {n: torch.zeros(3) for n in _build().state_dict()}
    cache.save(k, wrong, {"recipe": "unit", "info": {}})
    model = cache.cached_model("unit", {"x": 1}, _build, train)
    assert len(calls) == 1
    assert model.head.bias[0] == 1
    (line,) = _corrupt_lines(capsys)
    assert "does not fit the model" in line


def test_pickle_in_cache_is_never_executed(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    cache.cache_dir().mkdir(parents=True, exist_ok=True)
    cache.entry_path("evil").write_bytes(pickle.dumps(Bomb()))
    assert cache.load("evil") is None
    assert not marker.exists()
    assert "not a safetensors file" in capsys.readouterr().err


def _dead_pid() -> int:
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(proc.stdout)


def _temps():
    folder = cache.cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    dead = folder / f".k1.{_dead_pid()}.0123abcd.tmp"
    live = folder / f".k2.{os.getpid()}.0123abcd.tmp"
    old = folder / f".k3.{os.getpid()}.4567abcd.tmp"
    for path in (dead, live, old):
        path.write_bytes(b"x" * 1000)
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    return dead, live, old


@pytest.mark.parametrize("argv", [["cache", "ls"], ["cache", "clear", "--temp"]])
def test_temp_files_of_gone_writers_are_shown_and_swept(argv, capsys):
    from ipkit import cli

    path = cache.save("kept", {"w": torch.zeros(2)}, {"recipe": "t"})
    dead, live, old = _temps()
    assert {t.path.name: t.stale for t in cache.temp_files()} == {dead.name: True, live.name: False, old.name: True}
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert not dead.exists()
    assert not old.exists()
    assert live.exists()
    assert path.exists()
    assert ("swept 2 temp files" in out and live.name in out) if argv[1] == "ls" else "removed 2 temp" in out


def test_cache_ls_reports_a_directory_entry_as_corrupt(capsys):
    from ipkit import cli

    (cache.cache_dir() / f"bogus{cache.SUFFIX}").mkdir(parents=True)
    assert cli.main(["cache", "ls"]) == 0
    assert "bogus  " in (out := capsys.readouterr().out)
    assert "CORRUPT: not a regular file" in out
    assert cli.main(["cache", "clear"]) == 0
    assert cache.entries() == []


def test_run_start_sweeps_stale_temp_files(monkeypatch):
    from ipkit.notebook.registry import get_study
    from ipkit.notebook.runtime import start

    monkeypatch.setenv("IPKIT_PROFILE", "smoke")
    dead, live, _ = _temps()
    info = get_study("quickstart")
    start("quickstart", {n: p.default for n, p in info.params.items()}, info.profiles)
    assert not dead.exists()
    assert live.exists()


def test_header_is_covered_by_the_checksum():
    path = cache.save("h", {"w": torch.arange(4.0)}, {"recipe": "t"})
    _relabel_dtype(path)
    assert cache.load("h") is None
    assert not path.exists()


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
    assert cache.clear("a") == 1
    assert [e.recipe for e in cache.entries()] == ["b"]
    assert cache.clear() == 1
    assert cache.entries() == []


def _with_metadata(path, metadata) -> None:
    """Rewrite an entry's header with another ``__metadata__`` (the tensors untouched)."""
    import json

    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + n])
    header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + blob[8 + n :])


@pytest.mark.parametrize("metadata", ["a string", ["a", "list"], {"meta": "[1, 2]", "sha256": "x"}, {"meta": 3}])
def test_malformed_metadata_is_a_corrupt_entry(metadata, capsys):
    calls, train = _train_counter()
    model = cache.cached_model("unit", {"x": 1}, _build, train)
    _with_metadata(cache.entry_path(model.ipkit_key), metadata)
    (listed,) = cache.entries()
    assert not listed.ok
    assert listed.problem
    cache.cached_model("unit", {"x": 1}, _build, train)
    assert len(calls) == 2
    assert len(_corrupt_lines(capsys)) == 1
    assert cache.entries()[0].ok


@pytest.mark.parametrize(
    "err, fix",
    [(errno.ENOSPC, "free space there"), (errno.EROFS, "make it writable"), (errno.EACCES, "make it writable")],
)
def test_a_folder_that_refuses_writes_costs_the_cache_not_the_run(err, fix, monkeypatch, capsys):
    """Disk full or read-only: one line names the folder and the fix, no temp file stays,
    and the model trained in memory is returned (twice: nothing was stored)."""
    calls, train = _train_counter()
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(err, os.strerror(err))))
    first = cache.cached_model("unit", {"x": 1}, _build, train)
    second = cache.cached_model("unit", {"x": 1}, _build, train)
    assert len(calls) == 2
    assert first.head.bias[0] == 1
    lines = [ln for ln in capsys.readouterr().err.splitlines() if cache.UNWRITTEN_LINE.fullmatch(ln)]
    assert len(lines) == 2
    assert str(cache.cache_dir()) in lines[0]
    assert fix in lines[0]
    assert not list(cache.cache_dir().iterdir())
    assert second.ipkit_key == first.ipkit_key


def test_a_corrupt_entry_that_cannot_be_removed_is_rebuilt_in_memory(monkeypatch, capsys):
    calls, train = _train_counter()
    model = cache.cached_model("unit", {"x": 1}, _build, train)
    path = cache.entry_path(model.ipkit_key)
    path.write_bytes(b"\xff" * 7)
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.EROFS, "Read-only file system")))
    monkeypatch.setattr(
        type(path), "unlink", lambda self, missing_ok=False: (_ for _ in ()).throw(PermissionError(13, "denied"))
    )
    again = cache.cached_model("unit", {"x": 1}, _build, train)
    err = capsys.readouterr().err
    assert len(calls) == 2
    assert again.head.bias[0] == 2
    assert "): rebuilt" in err
    assert "cache not written" in err


@pytest.mark.slow
def test_planted_cache_faults_leave_the_claims_of_a_clean_run(tmp_path, monkeypatch, capsys):
    """End to end (quickstart, smoke): a truncated entry, an entry with malformed metadata
    and a missing entry are rebuilt, and a cache that cannot be written at all (its path is
    a file) costs only the cache; each run ends with the clean run's claims."""
    import json

    from ipkit import cli
    from ipkit.orchestrate.sweep import verdict

    for name in ("IPKIT_FIGURES", "IPKIT_RUNS"):
        monkeypatch.setenv(name, str(tmp_path / name))

    def claims() -> list[tuple]:
        assert cli.main(["run", "quickstart", "--profile", "smoke"]) == 0
        doc = json.loads((tmp_path / "IPKIT_FIGURES" / "quickstart" / "smoke" / "results.json").read_text())
        return [(c["id"], verdict(c), c["measured"], c.get("ci")) for c in doc["claims"]]

    clean = claims()
    truncated, malformed, missing = (cache.entry_path(e.key) for e in cache.entries()[:3])
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    _with_metadata(malformed, "a string")
    missing.unlink()
    capsys.readouterr()
    assert claims() == clean
    assert capsys.readouterr().err.count("corrupt cache entry") == 2
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("IPKIT_CACHE", str(blocked))
    assert claims() == clean
    assert "cache not written" in capsys.readouterr().err
