"""Malformed `ipkit run` invocations, generated from every study's parameters: each must end
with exit status 2 and one line on stderr, within seconds, before any notebook runs and
without writing under IPKIT_RUNS or IPKIT_FIGURES."""

import os
import time

import papermill
import pytest

from ipkit import cli
from ipkit.notebook.params import Param
from ipkit.notebook.registry import studies

SHELL_AND_PATHS = [
    "$(touch pwned)",
    "`id`",
    "; rm -rf ~",
    "a|b",
    "../../etc/passwd",
    "/tmp/x",
    "~/x",
    "a\nb",
    "'",
    '"',
    "*",
    "x y",
]
NOT_ASCII = ["１", "٣", "१२", "½"]


def _bad_values(p: Param) -> list[str]:
    """Values that must be refused for ``p``: wrong type, out of range, empty, not ASCII."""
    kind = p.type[5:-1] if p.type.startswith("list[") else p.type
    bad = []
    if kind in ("int", "float"):
        bad += ["lots", "1..5", "nan", "inf", "1_0", "0x10", *NOT_ASCII]
        if kind == "int":
            bad.append("2.5")
        if p.bounds:
            lo, hi = (int(b) if float(b).is_integer() else b for b in p.bounds)
            bad += [str(hi + 1), str(lo - 1)]
    elif kind == "bool":
        bad += ["maybe", "2", "１"]
    elif p.choices:
        bad += ["nosuch", *SHELL_AND_PATHS]
    if p.type.startswith("list["):
        bad += ["", ",", "[]"]
    return bad


def invocations() -> list[list[str]]:
    """Malformed argument lists across every study."""
    cases = []
    for info in studies().values():
        sid = info.id
        params = [p for p in info.params.values() if p.name != "profile"]
        cases += [["run", sid, "-p", f"{name}=1"] for name in ("bogus", "EPOCHS", "../x", "$(x)", "")]
        for j, p in enumerate(params):  # three of each parameter's bad values, in rotation
            bad = _bad_values(p)
            cases += [["run", sid, "-p", f"{p.name}={bad[(j + k) % len(bad)]}"] for k in range(3)]
        for p in params:  # the rules every study shares: each value once, a bounded length
            if p.type.startswith("list["):
                one = _ok(p).split(",")[0]
                cases.append(["run", sid, "-p", f"{p.name}={one},{one}"])
                cases.append(["run", sid, "-p", f"{p.name}=" + ",".join(map(str, range(10_000)))])
            if "arch" in p.name and "dataset" in info.params:  # lenet5 cannot take 8x8 digits
                cases.append(["run", sid, "-p", "dataset=digits", "-p", f"{p.name}=lenet5"])
        first = params[0]
        cases += [
            ["run", sid, "-p", f"{first.name}={_ok(first)}", "-p", f"{first.name}={_ok(first)}"],
            ["run", sid, "-p", "seeds=0", "-p", "seeds=1"],
            ["run", sid, "-p", "epochs=１"],
            ["run", sid, "-p", "seeds=0,٣"],
            ["run", sid, "-p"],
            ["run", sid, "-p", "epochs"],
            ["run", sid, "--profile", "huge"],
            ["run", sid, "--profile", "smoke", "-p", "profile=paper"],
            ["run", sid, "--profile", "paper"],
            ["run", sid, "--bogus"],
        ]
    cases += [
        ["run", "all", "-p", "epochs=1"],
        ["run", "../notebooks/00_quickstart"],
        ["run"],
        [],
        ["cache", "nuke"],
        ["bench", "--epochs", "x"],
        ["nosuchcommand"],
    ]
    for option in ("--threads", "--jobs", "--cpus-per-run"):  # numeric options: the -p rules
        cases += [
            [command, "quickstart", option, bad]
            for command in ("run", "sweep", "verify")
            for bad in ("３", "٣", "-1", "x")
        ]
    cases += [["bench", "--epochs", "１"], ["bench", "--repeats", "0"]]
    return cases


def _ok(p: Param) -> str:
    d = p.default
    return ",".join(map(str, d)) if isinstance(d, list) else str(d)


CASES = invocations()


def test_enough_cases_across_all_studies():
    assert len(CASES) >= 100
    assert {argv[1] for argv in CASES if argv[:1] == ["run"] and len(argv) > 1} >= set(studies())


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    for name in ("IPKIT_RUNS", "IPKIT_FIGURES", "IPKIT_DATA"):
        monkeypatch.setenv(name, str(tmp_path / name))
    monkeypatch.delenv("IPKIT_DOWNLOAD", raising=False)

    def no_run(*args, **kwargs):
        raise AssertionError("a malformed invocation reached papermill")

    monkeypatch.setattr(papermill, "execute_notebook", no_run)
    return tmp_path


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(a)[:60] for a in CASES])
def test_malformed_invocation_fails_fast_with_one_line(argv, sandbox, capsys):
    began = time.monotonic()
    code = cli.main(argv)
    took = time.monotonic() - began
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1
    assert err.endswith("\n")
    assert "error" in err
    assert len(err) < 400
    assert took < 5
    assert not (sandbox / "IPKIT_RUNS").exists()
    assert not (sandbox / "IPKIT_FIGURES").exists()


@pytest.mark.parametrize(
    "name, value",
    [
        ("IPKIT_DEVICE", "tpu"),
        ("IPKIT_DEVICE", "cuda:99"),
        ("IPKIT_DEVICE", "ｃｐｕ"),
        ("IPKIT_THREADS", "٣"),
        ("OMP_NUM_THREADS", "0"),
        ("IPKIT_CPU_BF16", "maybe"),
    ],
)
@pytest.mark.parametrize(
    "command", [["run", "quickstart"], ["sweep", "quickstart", "-p", "seeds=0"], ["verify", "quickstart"]]
)
def test_a_bad_environment_variable_fails_fast_with_one_line(name, value, command, sandbox, monkeypatch, capsys):
    """Every IPKIT_* setting is checked like a parameter, before any work: exit 2, one line
    naming the variable."""
    monkeypatch.setenv(name, value)
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert name in err
    assert not (sandbox / "IPKIT_RUNS").exists()
    assert not (sandbox / "IPKIT_FIGURES").exists()


BATCH = r"""
import json, os, sys, time
began = time.monotonic()
from ipkit import cli
loaded = time.monotonic() - began
report = []
for argv, env in json.loads(sys.argv[1]):
    os.environ.update(env)
    t = time.monotonic()
    code = cli.main(argv)
    took = time.monotonic() - t
    for name in env:
        os.environ.pop(name)
    heavy = [m for m in ("torch", "pandas", "nbformat", "papermill") if m in sys.modules]
    report.append([argv, code, took, heavy])
print(json.dumps({"import": loaded, "cases": report}))
"""


def _battery(info, command: str) -> list[tuple[list[str], dict[str, str]]]:
    """One malformed invocation of ``command`` for ``info`` per kind of bad input the
    reliability issue lists: a value out of range, an unknown parameter, a value given twice,
    a list past its limit, an architecture the dataset cannot take, a bad ``IPKIT_*``
    variable and a bad numeric option."""
    sid = info.id
    base = {"run": ["run", sid], "sweep": ["sweep", sid], "verify": ["verify", sid]}[command]
    number = next(p for p in info.params.values() if p.type in ("int", "float") and p.bounds)
    hi = float(number.bounds[1]) + 1
    cases = [
        (base + ["-p", f"{number.name}={int(hi) if hi.is_integer() else hi}"], {}),
        (base + ["-p", "bogus=1"], {}),
        (base + ["--threads", "３"], {}),
        (base, {"IPKIT_DEVICE": "tpu"}),
        (base, {"OMP_NUM_THREADS": "0"}),
    ]
    if command == "verify":
        cases += [(base + ["--seeds", "0,0"], {}), (base + ["--seeds", ",".join(map(str, range(10_000)))], {})]
    else:
        cases += [(base + ["-p", "seeds=0,0"], {}), (base + ["-p", "seeds=" + ",".join(map(str, range(10_000)))], {})]
    arch = next((p.name for p in info.params.values() if "arch" in p.name), None)
    if arch and "dataset" in info.params:
        cases.append((base + ["-p", "dataset=digits", "-p", f"{arch}=lenet5"], {}))
    return cases


@pytest.mark.parametrize("command", ["run", "sweep", "verify"])
@pytest.mark.parametrize("study", sorted(studies()))
def test_every_kind_of_bad_input_fails_in_a_fresh_process_without_loading_torch(study, command, tmp_path):
    """The generated battery, each case in the one-second budget of a command that does no
    work: exit 2, one line of at most 300 characters, no torch / pandas / nbformat /
    papermill loaded, nothing written, and the interpreter's start plus the import plus
    the call within max(3x, +1 s) of a bare ``python -c pass`` timed in this test."""
    import json
    import subprocess
    import sys

    cases = _battery(studies()[study], command)
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "IPKIT_RUNS": str(tmp_path / "runs")}
    if command != "verify":  # verify reads the committed results; run and sweep write none
        env["IPKIT_FIGURES"] = str(tmp_path / "figures")
    (tmp_path / "tmp").mkdir()

    def timed(args):
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, env=env)
        return time.monotonic() - began, done

    bare = min(timed(["pass"])[0] for _ in range(2))
    took, done = timed([BATCH, json.dumps(cases)])
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    lines = done.stderr.splitlines()
    assert len(lines) == len(cases), done.stderr
    for (argv, code, call, heavy), line in zip(out["cases"], lines):
        assert code == 2, (argv, line)
        assert "error" in line, (argv, line)
        assert len(line) <= 300, (argv, line)
        assert heavy == [], (argv, heavy)
        assert bare + out["import"] + call < max(3 * bare, bare + 1.0), (argv, bare, out["import"], call)
    assert not any((tmp_path / d).exists() for d in ("runs", "figures"))
    assert not any((tmp_path / "tmp").iterdir())
