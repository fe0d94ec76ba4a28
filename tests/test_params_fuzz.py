"""Malformed `ipkit run` invocations, generated from every study's parameters: each must end
with exit status 2 and one line on stderr, within seconds, before any notebook runs and
without writing under IPKIT_RUNS or IPKIT_FIGURES."""
import time

import papermill
import pytest

from ipkit import cli
from ipkit.notebook.params import Param
from ipkit.notebook.registry import studies

SHELL_AND_PATHS = ["$(touch pwned)", "`id`", "; rm -rf ~", "a|b", "../../etc/passwd", "/tmp/x",
                   "~/x", "a\nb", "'", '"', "*", "x y"]
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
        first = params[0]
        cases += [["run", sid, "-p", f"{first.name}={_ok(first)}", "-p", f"{first.name}={_ok(first)}"],
                  ["run", sid, "-p", "seeds=0", "-p", "seeds=1"],
                  ["run", sid, "-p", "epochs=１"], ["run", sid, "-p", "seeds=0,٣"],
                  ["run", sid, "-p"], ["run", sid, "-p", "epochs"],
                  ["run", sid, "--profile", "huge"], ["run", sid, "--profile", "smoke", "-p", "profile=paper"],
                  ["run", sid, "--profile", "paper"], ["run", sid, "--bogus"]]
    cases += [["run", "all", "-p", "epochs=1"], ["run", "../notebooks/00_quickstart"], ["run"], [],
              ["cache", "nuke"], ["bench", "--epochs", "x"], ["nosuchcommand"]]
    for option in ("--threads", "--jobs", "--cpus-per-run"):  # numeric options: the -p rules
        cases += [[command, "quickstart", option, bad] for command in ("run", "sweep", "verify")
                  for bad in ("３", "٣", "-1", "x")]
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
    assert err.count("\n") == 1 and err.endswith("\n") and "error" in err
    assert took < 5
    assert not (sandbox / "IPKIT_RUNS").exists() and not (sandbox / "IPKIT_FIGURES").exists()


@pytest.mark.parametrize("name, value", [("IPKIT_DEVICE", "tpu"), ("IPKIT_DEVICE", "cuda:99"),
                                         ("IPKIT_DEVICE", "ｃｐｕ"), ("IPKIT_THREADS", "٣"),
                                         ("OMP_NUM_THREADS", "0"), ("IPKIT_CPU_BF16", "maybe")])
@pytest.mark.parametrize("command", [["run", "quickstart"], ["sweep", "quickstart", "-p", "seeds=0"],
                                     ["verify", "quickstart"]])
def test_a_bad_environment_variable_fails_fast_with_one_line(name, value, command, sandbox, monkeypatch, capsys):
    """Every IPKIT_* setting is checked like a parameter, before any work: exit 2, one line
    naming the variable."""
    monkeypatch.setenv(name, value)
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err
    assert not (sandbox / "IPKIT_RUNS").exists() and not (sandbox / "IPKIT_FIGURES").exists()
