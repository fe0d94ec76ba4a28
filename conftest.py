"""Test-session settings: every run writes figures, results, executed notebooks and the
model cache under a temporary folder (never over committed figures), notebooks run in the
smoke profile, and progress bars stay quiet. Set before any notebook kernel starts."""
import os
import tempfile

_TMP = tempfile.mkdtemp(prefix="ipkit-test-")
for _name, _sub in (("IPKIT_FIGURES", "figures"), ("IPKIT_CACHE", "cache"), ("IPKIT_RUNS", "runs")):
    os.environ[_name] = os.path.join(_TMP, _sub)
os.environ["IPKIT_PROFILE"] = "smoke"
os.environ["IPKIT_QUIET"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
