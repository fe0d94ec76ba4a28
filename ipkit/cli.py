"""The ``ipkit`` command: list, run and report studies, inspect the cache, benchmark.

Bad input (unknown study, profile or parameter, wrong type or range, missing data) ends
with a one-line error and exit status 2 before anything runs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time

from . import cache, timings
from .study import PROFILE_NAMES, ParamError, StudyInfo, coerce, figures_dir, get_study, resolve
from .study import runs_dir, studies


def _fail(msg: str) -> int:
    one_line = " ".join(msg.split("\n"))
    print(f"ipkit: error: {one_line}", file=sys.stderr)
    return 2


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (no usage block) and exit 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.splitlines())}: see `{self.prog} --help`\n")


def cmd_list(args: argparse.Namespace) -> int:
    """Print every study with its summary and parameters."""
    for info in studies().values():
        print(f"{info.id}  ({info.path.name})\n  {info.title}")
        if info.summary:
            print(f"  {info.summary}")
        print(f"  profiles: default, {', '.join(info.profiles)}")
        for p in info.params.values():
            print(f"    {p.name} = {p.default!r}  ({p.describe()})  {p.help}")
        print()
    return 0


def _parse_overrides(info: StudyInfo, pairs: list[str]) -> dict:
    given, seen = {}, {}
    for pair in pairs:
        if "=" not in pair:
            raise ParamError(f"parameter {pair!r} needs a value: write -p name=value")
        name, text = pair.split("=", 1)
        name = name.strip()
        if name not in info.params or name == "profile":
            hint = " (use --profile)" if name == "profile" else ""
            raise ParamError(f"unknown parameter {name!r} for study '{info.id}'{hint}: choose one of "
                             f"{', '.join(n for n in info.params if n != 'profile')}")
        if name in seen:
            lists = " (a list is comma-separated: -p name=a,b)" if "list" in info.params[name].type else ""
            raise ParamError(f"parameter '{name}' is given twice (-p {seen[name]} and -p {pair}): "
                             f"give it once{lists}")
        seen[name] = pair
        given[name] = coerce(info.params[name], text)
    return given


def cmd_run(args: argparse.Namespace) -> int:
    """Validate, then execute one study (or all) with papermill into runs/."""
    try:
        infos = list(studies().values()) if args.study == "all" else [get_study(args.study)]
        if args.study == "all" and args.param:
            raise ParamError("-p needs a single study: ipkit run STUDY -p name=value")
        plans = []
        for info in infos:
            given = _parse_overrides(info, args.param or [])
            resolve(info, args.profile, given)
            plans.append((info, given))
    except ParamError as err:
        return _fail(str(err))

    import papermill as pm

    os.environ["IPKIT_PROFILE"] = args.profile
    out_dir = runs_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    for info, given in plans:
        output = out_dir / f"{info.path.stem}-{args.profile}.ipynb"
        started = time.time()
        print(f"ipkit: running {info.id} (profile {args.profile}) -> {output}")
        try:
            pm.execute_notebook(str(info.path), str(output), parameters={**given, "profile": args.profile},
                                kernel_name="python3", cwd=str(info.path.parent),
                                progress_bar=not os.environ.get("CI"))
        except pm.PapermillExecutionError as err:
            print(f"ipkit: {info.id} failed in cell {err.cell_index}: {err.ename}: {err.evalue}\n"
                  f"  executed notebook: {output}", file=sys.stderr)
            return 1
        out = figures_dir() / info.id / args.profile
        spent = timings.add_sections(out, info.id, args.profile, output, since=started)
        print(f"ipkit: figures and results of {info.id} in {out}")
        if args.timings:
            print(timings.markdown(spent))
        if (out / "results.json").exists():
            for c in json.loads((out / "results.json").read_text())["claims"]:
                verdict = c.get("verdict") or ("holds" if c["holds"] else "does not hold")
                print(f"  {c['id']} {verdict}: {c['measured']}")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Rerun a study with other seeds; compare each claim's verdict with the committed one."""
    from . import verify

    try:
        info = get_study(args.study)
        seeds = coerce(info.params["seeds"], args.seeds)
        given = _parse_overrides(info, args.param or [])
        if "seeds" in given:
            raise ParamError("give the seeds with --seeds, not -p seeds=...")
        path = verify.committed_results(info, args.profile)
        committed = json.loads(path.read_text())
        resolve(info, args.profile, verify.rerun_params(committed, info, seeds, given))
    except ParamError as err:
        return _fail(str(err))
    print(f"ipkit: verifying {info.id} (profile {args.profile}) with seeds "
          f"{','.join(map(str, seeds))} against {path}")
    import papermill as pm

    try:
        path, rows = verify.verify(info, args.profile, seeds, given)
    except pm.PapermillExecutionError as err:
        print(f"ipkit: {info.id} failed in cell {err.cell_index}: {err.ename}: {err.evalue}",
              file=sys.stderr)
        return 1
    print("\n".join(verify.report_lines(rows)))
    flips = [r.id for r in rows if r.flip]
    print(f"ipkit: {len(flips)} flip(s){': ' + ', '.join(flips) if flips else ''}; "
          f"{sum(r.changed for r in rows)} of {len(rows)} verdicts changed")
    if args.record:
        verify.record(path, seeds, rows)
        print(f"ipkit: recorded under 'stability' in {path}")
    return 1 if flips else 0


def _gallery() -> str:
    root = figures_dir()
    lines = ["# Figures", "",
             "Made by `ipkit run STUDY --profile PROFILE`; this page by `ipkit report`. Every number",
             "comes from the run that drew it; a claim's verdict is computed from measured values.", ""]
    for info in studies().values():
        runs = [root / info.id / p / "results.json" for p in PROFILE_NAMES]
        runs = [r for r in runs if r.exists()]
        if not runs:
            continue
        lines += [f"## {info.title}", "", f"Notebook: `notebooks/{info.path.name}`", ""]
        for path in runs:
            data = json.loads(path.read_text())
            rel = path.parent.relative_to(root)
            lines += [f"### Profile `{data['profile']}`: {data['date']}, {data['device']}, "
                      f"{data['runtime_s']:.0f} s", ""]
            if data["claims"]:
                from .results import claims_markdown

                lines += [claims_markdown(data["claims"]), ""]
                from .verify import stability_markdown

                if data.get("stability"):
                    lines += ["**Stability** (`ipkit verify`)", "", stability_markdown(data), ""]
            for table in data.get("tables", []):
                md = path.parent / f"{table}.md"
                if md.exists():
                    lines += [f"**{table}**", "", md.read_text().strip(), ""]
            for fig in data["figures"]:
                lines += [f"![{fig}]({rel.as_posix()}/{fig}.png)", ""]
    return "\n".join(lines)


def cmd_report(args: argparse.Namespace) -> int:
    """Write figures/README.md, a gallery of every study's figures and claim tables."""
    path = figures_dir() / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_gallery())
    print(f"ipkit: wrote {path}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    """List or clear the model cache."""
    if args.action == "clear":
        print(f"ipkit: removed {cache.clear(args.recipe)} entries from {cache.cache_dir()}")
        return 0
    items = cache.entries()
    print(f"{cache.cache_dir()}: {len(items)} entries, "
          f"{sum(e.size for e in items) / 1e6:.1f} MB")
    for e in items:
        when = dt.datetime.fromtimestamp(e.created).strftime("%Y-%m-%d %H:%M")
        flag = "" if e.ok else "  CORRUPT (rebuilt on next use)"
        print(f"  {e.key}  {when}  {e.size / 1e6:7.2f} MB  {e.recipe}{flag}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Time the ipkit trainer against a plain DataLoader loop (or an ensemble trained
    together against one by one) and print the ratio."""
    from .bench import ensemble_speed, run, trainer_layouts

    if args.trainer_layouts:
        result = trainer_layouts(args.dataset, args.arch, args.epochs, args.batch_size,
                                 repeats=args.repeats)
        print(json.dumps(result, indent=2))
        print(f"trainer layout {result['chosen_layout']} vs {result['before_layout']}: "
              f"{result['speedup']}x (median of {result['repeats']} alternating pairs; accuracy "
              f"{result['chosen_acc']} vs {result['before_acc']}) on {result['device']}")
        return 0
    if args.what == "ensemble":
        result = ensemble_speed(args.dataset, args.arch, args.members, args.epochs, args.batch_size)
        print(json.dumps(result, indent=2))
        print(f"{args.members} members together: {result['together_s']} s, one by one: "
              f"{result['one_by_one_s']} s -> {result['speedup']}x on {result['device']}")
        return 0
    result = run(args.dataset, args.arch, args.epochs, args.batch_size)
    print(json.dumps(result, indent=2))
    print(f"ipkit trainer: {result['ipkit_s']} s, plain DataLoader loop: {result['plain_s']} s "
          f"-> {result['speedup']}x on {result['device']}")
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ipkit`` command."""
    ap = ArgumentParser(prog="ipkit", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="studies, their profiles and parameters").set_defaults(fn=cmd_list)
    run = sub.add_parser("run", help="execute a study notebook with papermill")
    run.add_argument("study", help="study id (see `ipkit list`) or 'all'")
    run.add_argument("--profile", default=os.environ.get("IPKIT_PROFILE", "default"),
                     help="smoke | default | paper (default: default)")
    run.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                     help="set a parameter; lists are comma-separated (repeatable)")
    run.add_argument("--timings", action="store_true",
                     help="print seconds per notebook section and per kind of work (timings.md)")
    run.set_defaults(fn=cmd_run)
    ver = sub.add_parser("verify", help="rerun a study with other seeds and compare its verdicts")
    ver.add_argument("study", help="study id (see `ipkit list`)")
    ver.add_argument("--seeds", default="101,102,103", help="comma-separated seeds of the rerun")
    ver.add_argument("--profile", default="default", help="profile of the committed run to check")
    ver.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                     help="set a parameter of the rerun (repeatable)")
    ver.add_argument("--record", action="store_true",
                     help="store the comparison under 'stability' in the committed results.json")
    ver.set_defaults(fn=cmd_verify)
    sub.add_parser("report", help="write figures/README.md").set_defaults(fn=cmd_report)
    c = sub.add_parser("cache", help="list or clear the model cache")
    c.add_argument("action", choices=["ls", "clear"])
    c.add_argument("--recipe", help="with clear: only this recipe's entries")
    c.set_defaults(fn=cmd_cache)
    b = sub.add_parser("bench", help="ipkit trainer vs a plain DataLoader loop, or ensemble training")
    b.add_argument("--dataset", default="mnist5k")
    b.add_argument("--arch", default="cnn")
    b.add_argument("--epochs", type=int, default=5)
    b.add_argument("--batch-size", type=int, default=128)
    b.add_argument("--what", choices=["trainer", "ensemble"], default="trainer",
                   help="trainer: vs a DataLoader loop; ensemble: members together (vmap) vs one by one")
    b.add_argument("--members", type=int, default=5, help="with --what ensemble: ensemble size")
    b.add_argument("--trainer-layouts", action="store_true",
                   help="the trainer's former memory layout vs the one it now picks per model")
    b.add_argument("--repeats", type=int, default=3, help="with --trainer-layouts: alternating runs")
    b.set_defaults(fn=cmd_bench)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ipkit`` console script."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as done:  # --help, or a usage error already printed as one line
        return int(done.code or 0)
    if args.command in ("run", "verify") and args.profile not in PROFILE_NAMES:
        return _fail(f"unknown profile '{args.profile}': choose one of {', '.join(PROFILE_NAMES)}")
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
