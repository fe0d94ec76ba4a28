"""The ``ipkit`` command: list, run, sweep and report studies, inspect the cache, benchmark.

Bad input (unknown study, profile or parameter, wrong type or range, missing data) ends
with a one-line error and exit status 2 before anything runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .core import environment, scratch
from .core.files import write_atomic, write_table
from .core.paths import figures_dir, repo_root, runs_dir
from .notebook.params import PROFILE_NAMES, ParamError, coerce
from .notebook.registry import StudyInfo, get_study, lookup, resolve, studies, study_module
from .orchestrate import sweep

if TYPE_CHECKING:  # the run machinery loads only once a command's input is sound
    from .orchestrate import parallel


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
    given: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ParamError(f"parameter {pair!r} needs a value: write -p name=value")
        name, text = pair.split("=", 1)
        name = name.strip()
        param = lookup(info, name)
        if name in seen:
            lists = " (a list is comma-separated: -p name=a,b)" if "list" in param.type else ""
            raise ParamError(f"parameter '{name}' is given twice (-p {seen[name]} and -p {pair}): give it once{lists}")
        seen[name] = pair
        given[name] = coerce(param, text)
    return given


def _check_jobs(args: argparse.Namespace) -> None:
    """Ray for ``--jobs`` above 1 or a cluster address (ParamError, one line; the parser
    already refused a count that is not a positive whole number, :func:`count`). The run
    machinery loads here, so call it last, once the rest of the input is sound."""
    from .orchestrate import parallel

    parallel.check_ray(args.jobs, args.address)


def _check_environment() -> None:
    """Raise ParamError unless ``IPKIT_THREADS`` / ``OMP_NUM_THREADS``, ``IPKIT_CPU_BF16``
    and ``IPKIT_DEVICE`` hold values the trainer can use: their form first, without torch
    (:func:`ipkit.core.environment.check`); torch is loaded only to ask whether a GPU that
    ``IPKIT_DEVICE`` names exists."""
    try:
        environment.check()
        if (environment.device() or ("cpu",))[0] == "cuda":
            from .methods.train import default_device

            default_device()
    except ValueError as err:
        raise ParamError(str(err)) from None


def _threads_as_committed(given: int | None, committed: dict, where: Path) -> int | None:
    """``given`` (``--threads``), else the thread count of the committed run ``committed``
    (the results.json at ``where``; :func:`ipkit.evidence.results.recorded_threads`), so that a
    setting equal to the committed one reproduces it on the same machine; says which."""
    from .evidence.results import recorded_threads

    if given is not None:
        return given
    threads = recorded_threads(committed)
    if threads is not None:
        print(f"ipkit: {threads} CPU thread(s) per run, as the committed run in {where} (--threads to change)")
    return threads


def _dispatch(jobs: list[parallel.Job], args: argparse.Namespace) -> list[parallel.Outcome] | int:
    """Run the jobs as the options say; an exit status instead when stopped before the end."""
    from .orchestrate import parallel

    try:
        return parallel.run_jobs(
            jobs,
            at_once=args.jobs,
            cpus_per_run=args.cpus_per_run,
            gpus_per_run=args.gpus_per_run,
            address=args.address,
            threads=args.threads,
        )
    except ParamError as err:
        return _fail(str(err))
    except parallel.RayError as err:
        print(f"ipkit: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ipkit: interrupted", file=sys.stderr)
        return 130


def _failures(outcomes: list[parallel.Outcome]) -> int:
    failed = [o.job.label for o in outcomes if not o.ok]
    if failed:
        print(f"ipkit: {len(failed)} of {len(outcomes)} runs failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    """Validate, then execute studies with papermill into runs/ (several at once on Ray)."""
    try:
        infos = list(studies().values()) if "all" in args.study else [get_study(s) for s in args.study]
        if len(infos) > 1 and args.param:
            raise ParamError("-p needs a single study: ipkit run STUDY -p name=value")
        plans = []
        for info in infos:
            given = _parse_overrides(info, args.param or [])
            resolve(info, args.profile, given)
            plans.append((info, given))
        _check_jobs(args)
    except ParamError as err:
        return _fail(str(err))
    from .notebook.runtime import new_run_id  # the run machinery loads once the input is sound
    from .orchestrate import parallel

    jobs = [
        parallel.Job(
            info.id,
            args.profile,
            given,
            info.path,
            figures_dir() / info.id / args.profile,
            runs_dir() / f"{info.path.stem}-{args.profile}-{new_run_id()}.ipynb",
        )
        for info, given in plans
    ]
    print(f"ipkit: running {', '.join(j.study for j in jobs)} (profile {args.profile}, {args.jobs} at a time)")
    outcomes = _dispatch(jobs, args)
    if isinstance(outcomes, int):
        return outcomes
    for o in outcomes:  # this run's own files: another run may have published to o.job.dest since
        if o.ok and args.timings and "timings.md" in o.files:
            print(o.files["timings.md"].decode())
        if o.ok and "results.json" in o.files:
            for c in json.loads(o.files["results.json"])["claims"]:
                print(f"  {o.job.study} {c['id']} {sweep.verdict(c)}: {c['measured']}")
    return _failures(outcomes)


def _sweep_plan(info, args: argparse.Namespace) -> list[tuple[str, list[sweep.Setting]]]:
    """The sweeps to run, each ``(sweep id, its settings)``: the study's declared
    sensitivity sweeps with ``--sensitivity``, else the grid of ``-p`` / ``--seeds-sets``."""
    kind = "sensitivity" if args.sensitivity else "alternatives" if args.alternatives else None
    if args.sensitivity and args.alternatives:
        raise ParamError("give --sensitivity or --alternatives, not both: run them one after the other")
    if kind:
        from .evidence import sensitivity

        if args.param or args.seeds_sets:
            raise ParamError(f"--{kind} runs the study's declared sweeps: leave out -p and --seeds-sets")
        every = sensitivity.declared(study_module(info.id), kind)
        if not every:
            raise ParamError(
                f"study '{info.id}' declares no {kind} sweeps ({sensitivity.KINDS[kind]} in ipkit/studies/{info.id}.py)"
            )
        declared = every if args.id is None else tuple(sw for sw in every if sw.id == args.id)
        if not declared:
            raise ParamError(
                f"--id '{args.id}' is none of {info.id}'s {kind} sweeps: "
                f"choose one of {', '.join(sw.id for sw in every)}"
            )
        plan = [
            (sw.id, sweep.settings(sweep.parse_grid(info, sensitivity.grid_pairs(sw)), sw.fixed)) for sw in declared
        ]
        if kind == "alternatives":  # the default itself is the committed run
            default = resolve(info, args.profile, {})
            plan = [
                (sid, [s for s in points if any(default[k] != v for k, v in s.values.items())]) for sid, points in plan
            ]
        return plan
    pairs = list(args.param or []) + ([f"seeds={args.seeds_sets}"] if args.seeds_sets else [])
    grid = sweep.parse_grid(info, pairs)
    if args.id is not None and not re.fullmatch(r"[A-Za-z0-9._+=-]+", args.id):
        raise ParamError(f"--id '{args.id}' must be letters, digits and . _ + = - only")
    return [(args.id or sweep.sweep_id(grid), sweep.settings(grid))]


def cmd_sweep(args: argparse.Namespace) -> int:
    """Validate every setting of every sweep, run them all, then summarize the claims
    across each sweep's settings (and, for sensitivity sweeps, name them in results.json)."""
    try:
        info = get_study(args.study)
        plan = _sweep_plan(info, args)
        for _, points in plan:
            sweep.validate(info, args.profile, points)
        _check_jobs(args)
    except ParamError as err:
        return _fail(str(err))
    from .evidence import sensitivity  # the run machinery loads once the input is sound
    from .notebook import plots
    from .orchestrate import parallel

    profile_dir = figures_dir() / info.id / args.profile
    results_path = profile_dir / "results.json"
    if (args.sensitivity or args.alternatives) and results_path.is_file():
        try:
            committed = json.loads(results_path.read_text())
        except (OSError, ValueError):  # unreadable: this process's threads
            committed = {}
        args.threads = _threads_as_committed(args.threads, committed, results_path)

    def label(sid: str, s: sweep.Setting) -> str:
        return s.name if len(plan) == 1 else f"{sid}/{s.name}"

    jobs = [
        parallel.Job(
            info.id,
            args.profile,
            s.params,
            info.path,
            profile_dir / "sweeps" / sid / s.name,
            runs_dir() / "sweeps" / sid / f"{info.path.stem}-{s.name}.ipynb",
            label(sid, s),
        )
        for sid, points in plan
        for s in points
    ]
    print(
        f"ipkit: {len(plan)} sweep(s), {len(jobs)} settings of {info.id} (profile {args.profile}, "
        f"{args.jobs} at a time) -> {profile_dir / 'sweeps'}"
    )
    outcomes = _dispatch(jobs, args)
    if isinstance(outcomes, int):
        return outcomes
    errors = {o.job.setting: o.error for o in outcomes if not o.ok}
    plots.theme()
    for sid, points in plan:
        root = profile_dir / "sweeps" / sid
        table = sweep.summary(
            points,
            {s.name: root / s.name for s in points},
            {s.name: errors[label(sid, s)] for s in points if label(sid, s) in errors},
            resolve(info, args.profile, {}),
        )
        root.mkdir(parents=True, exist_ok=True)
        write_table(table, root / "summary")
        plots.savefig(plots.sweep_verdicts(table, f"{info.id}: sweep {sid}"), root / "summary")
        print(table.drop(columns=["measured"]).to_markdown(index=False, floatfmt=".3f"))
        print(f"ipkit: summary in {root / 'summary.md'} and {root / 'summary.png'}")
    if args.sensitivity or args.alternatives:
        for f in sensitivity.findings(
            study_module(info.id), profile_dir, "sensitivity" if args.sensitivity else "alternatives"
        ):
            print(f"  {f['text']}")
        if sensitivity.attach(study_module(info.id), profile_dir):
            print(f"ipkit: sensitivity named in {profile_dir / 'results.json'}")
    return _failures(outcomes)


def cmd_verify(args: argparse.Namespace) -> int:
    """Rerun a study once per seed set; compare each claim's verdict with the committed one."""
    from .evidence.stability import record, report_lines

    try:
        info = get_study(args.study)
        sets = sweep.seed_sets(info, args.seeds)
        given = _parse_overrides(info, args.param or [])
        if "seeds" in given:
            raise ParamError("give the seeds with --seeds, not -p seeds=...")
        path = sweep.committed_results(info, args.profile)
        committed = json.loads(path.read_text())
        for seeds in sets:
            resolve(info, args.profile, sweep.rerun_params(committed, info, seeds, given))
        _check_jobs(args)
    except ParamError as err:
        return _fail(str(err))
    from .orchestrate import parallel, verify  # the run machinery loads once the input is sound

    print(
        f"ipkit: verifying {info.id} (profile {args.profile}) with seeds "
        f"{'; '.join(','.join(map(str, s)) for s in sets)} against {path}"
    )
    threads = _threads_as_committed(args.threads, committed, path)
    try:
        path, runs = verify.verify(
            info,
            args.profile,
            sets,
            given,
            at_once=args.jobs,
            cpus_per_run=args.cpus_per_run,
            gpus_per_run=args.gpus_per_run,
            address=args.address,
            threads=threads,
        )
    except (RuntimeError, parallel.RayError) as err:
        print(f"ipkit: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ipkit: interrupted", file=sys.stderr)
        return 130
    flips = []
    for seeds, rows in runs:
        print(f"ipkit: seeds {','.join(map(str, seeds))}")
        print("\n".join(report_lines(rows)))
        flips += [f"{r.id} (seeds {','.join(map(str, seeds))})" for r in rows if r.flip]
    changed = sum(r.changed for _, rows in runs for r in rows)
    print(
        f"ipkit: {len(flips)} flip(s){': ' + ', '.join(flips) if flips else ''}; "
        f"{changed} of {sum(len(rows) for _, rows in runs)} verdicts changed"
    )
    if args.record:
        record(path, runs)
        print(f"ipkit: recorded under 'stability' in {path}")
    return 1 if flips else 0


def profile_section(root: Path, path: Path, notebook: str) -> list[str]:
    """Gallery lines of one results.json: the executed notebook's link, claim rows, stability,
    tables and figures."""
    from .evidence import sensitivity
    from .evidence.results import check_results, claims_markdown
    from .evidence.stability import stability_markdown

    data = json.loads(path.read_text())
    check_results(data)
    rel = path.parent.relative_to(root)
    lines = [f"### Profile `{data['profile']}`: {data['date']}, {data['device']}, {data['runtime_s']:.0f} s", ""]
    lines += _notebook_link(path.parent / notebook, root)
    if data["claims"]:
        lines += [claims_markdown(data["claims"]), ""]
        if data.get("stability"):
            lines += ["**Stability** (`ipkit verify`)", "", stability_markdown(data), ""]
        if data.get("sensitivity"):
            lines += ["**What would make it hold** (`ipkit sweep --sensitivity`)", ""]
            lines += [f"- {f['text']} [Table]({rel.as_posix()}/{f['table']})." for f in data["sensitivity"]] + [""]
            for table in dict.fromkeys(f["table"] for f in data["sensitivity"]):
                lines += [f"![{table}]({rel.as_posix()}/{table.removesuffix('.md')}.png)", ""]
        if data.get("alternatives"):
            lines += ["**At the alternatives the defaults were chosen among** (`ipkit sweep --alternatives`)", ""]
            lines += [f"- {f['text']} [Table]({rel.as_posix()}/{f['table']})." for f in data["alternatives"]] + [""]
            changed = [
                f"{c['id']} ({', '.join(k for k, v in c['alternatives'].items() if v != c['verdict'])})"
                for c in data["claims"]
                if c.get("alternatives") and not c.get("robust")
            ]
            lines += [f"Verdicts that change at an alternative: {'; '.join(changed) or 'none'}.", ""]
        module = study_module(data["study"]) if str(data["study"]).isidentifier() else None
        waiting = [
            line
            for kind in sensitivity.KINDS
            for line in sensitivity.pending(module, data["profile"], data.get(kind) or [], kind)
        ]
        if waiting:
            lines += ["**Declared sweeps not drawn yet**", ""] + waiting + [""]
    for table in data.get("tables", []):
        lines += _table_lines(path.parent / f"{table}.md", rel)
    for fig in data["figures"]:
        lines += [f"![{fig}]({rel.as_posix()}/{fig}.png)", ""]
    return lines


#: The gallery shows a table of at most this many rows inline and links a longer one (the
#: per-target and per-carrier unit tables run to thousands of rows).
GALLERY_TABLE_ROWS = 25


def _table_lines(md: Path, rel: Path) -> list[str]:
    """Gallery lines of one Markdown table: inline when it has at most
    :data:`GALLERY_TABLE_ROWS` rows, else its row count and links to it and its CSV."""
    if not md.exists():
        return []
    text = md.read_text().strip()
    rows = max(0, sum(line.startswith("|") for line in text.splitlines()) - 2)
    if rows <= GALLERY_TABLE_ROWS:
        return [f"**{md.stem}**", "", text, ""]
    where = f"{rel.as_posix()}/{md.stem}"
    return [f"**{md.stem}**: {rows:,} rows, [{md.name}]({where}.md) · [{md.stem}.csv]({where}.csv)", ""]


def _gallery() -> str:
    """figures/README.md's text; a results.json that cannot be read is reported (here and
    on stderr) as unreadable, and the other studies go on. Each results.json shown (and
    each of its sweeps' settings) is first brought to the current schema
    (:func:`ipkit.evidence.results.upgrade_file`)."""
    from .evidence.results import upgrade_file

    root = figures_dir()
    lines = [
        "# Figures",
        "",
        "Made by `ipkit run STUDY --profile PROFILE`; this page by `ipkit report`. Every number",
        "comes from the run that drew it; a claim's verdict is computed from measured values.",
        "",
        "How to read a verdict: each claim quotes the paper's words and quantifier (`up to`:",
        "decided on the best model; `every`: one part per member; `on average`: the mean;",
        "`marginal`: two-sided). A claim with k parts takes each interval at the familywise",
        "level 1 - 0.05/k, its outer resampling unit being the independent training (seed).",
        "`holds` / `does not hold`: every interval on the holding side / one on the other side;",
        "`untestable here`: the threshold lies beyond what the setting can reach (its ceiling);",
        "`inconclusive`: an interval straddles its threshold, or fewer than 3 trainings stand",
        "behind it (the row says so). Where a default was chosen after a trial run, the verdict",
        "at each alternative it was chosen among is shown beside it, with `robust`.",
        "",
    ]
    for info in studies().values():
        runs = [root / info.id / p / "results.json" for p in PROFILE_NAMES]
        runs = [r for r in runs if r.exists()]
        if not runs:
            continue
        lines += [f"## {info.title}", "", f"Notebook: `notebooks/{info.path.name}`", ""]
        for path in runs:
            try:
                upgrade_file(path)
                for setting in (path.parent / "sweeps").glob("*/*/results.json"):
                    upgrade_file(setting)
                lines += profile_section(root, path, info.path.name)
            except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
                why = f"{type(err).__name__}: {' '.join(str(err).split())[:200]}"
                print(
                    f"ipkit: {path} is unreadable ({why}): rerun `ipkit run {info.id} --profile {path.parent.name}`",
                    file=sys.stderr,
                )
                lines += [f"### Profile `{path.parent.name}`: results.json unreadable ({why})", ""]
    return "\n".join(lines)


def _notebook_link(notebook: Path, root: Path) -> list[str]:
    """The gallery's link to a run's executed notebook, if it was published."""
    if not notebook.exists():
        return []
    return [
        f"Executed notebook (read without running): [`{notebook.name}`]({notebook.relative_to(root).as_posix()})",
        "",
    ]


def cmd_report(args: argparse.Namespace) -> int:
    """Write figures/README.md, a gallery of every study's figures and claim tables, and
    with --html the documentation site (:func:`build_site`)."""
    path = figures_dir() / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    gallery = _gallery()
    write_atomic(path, lambda tmp: tmp.write_text(gallery))
    print(f"ipkit: wrote {path}")
    if args.html:
        status = build_site(Path(args.html))
        if status:
            return status
        print(f"ipkit: wrote the site to {Path(args.html) / 'index.html'} (readable offline)")
    return 0


def build_site(out: Path) -> int:
    """Build the documentation site (Sphinx with myst-nb, ``docs/conf.py``) into ``out``,
    offline, warnings as errors: the guides, one page per study from its results.json and
    figures (:func:`profile_section`, as the gallery) and the executed notebooks, rendered
    without running them. Returns Sphinx's exit status."""

    docs = repo_root() / "docs"
    if not (docs / "conf.py").is_file():
        return _fail(f"no Sphinx sources at {docs}: build the site from a checkout of ipkit")
    try:
        from sphinx.cmd.build import build_main
    except ImportError:
        return _fail("Sphinx is missing: pip install -c constraints.txt -e '.[docs]' (make setup does)")
    return build_main(["-E", "-W", "--keep-going", "-q", "-b", "html", str(docs), str(out)])


def cmd_cache(args: argparse.Namespace) -> int:
    """List or clear the model cache; both sweep temp files of interrupted writes and the
    scratch and partial run folders killed runs left (:mod:`ipkit.core.scratch`)."""
    from .methods import cache

    if args.action == "clear":
        if args.temp:
            swept, left = cache.sweep_temp(), scratch.sweep_orphans()
            print(
                f"ipkit: removed {len(swept)} temp files of interrupted writes "
                f"({sum(t.size for t in swept) / 1e6:.1f} MB) from {cache.cache_dir()} and "
                f"{len(left)} folders killed runs left"
            )
            return 0
        left = scratch.sweep_orphans()
        print(
            f"ipkit: removed {cache.clear(args.recipe)} entries from {cache.cache_dir()} and "
            f"{len(left)} folders killed runs left"
        )
        return 0
    swept = cache.sweep_temp()
    items, temps, left = cache.entries(), cache.temp_files(), scratch.orphans()
    print(f"{cache.cache_dir()}: {len(items)} entries, {sum(e.size for e in items) / 1e6:.1f} MB")
    if swept:
        print(f"  swept {len(swept)} temp files of interrupted writes ({sum(t.size for t in swept) / 1e6:.1f} MB)")
    for e in items:
        when = dt.datetime.fromtimestamp(e.created).strftime("%Y-%m-%d %H:%M")
        flag = "" if e.ok else f"  CORRUPT: {e.problem} (rebuilt on next use)"
        print(f"  {e.key}  {when}  {e.size / 1e6:7.2f} MB  {e.recipe}{flag}")
    for t in temps:
        print(f"  {t.path.name}  {t.size / 1e6:7.2f} MB  temp file of a write in progress (pid {t.pid})")
    for o in left:
        print(
            f"  {o.path}  {o.kind} left by a killed run (pid {o.pid or '?'}, "
            f"{o.age_s / 60:.0f} min old): `ipkit cache clear --temp` removes it"
        )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Time the ipkit trainer against a plain DataLoader loop (or an ensemble trained
    together against one by one) and print the ratio."""
    from .orchestrate.bench import REDRAW_GOAL_S, ensemble_speed, redraw, run

    if args.what == "redraw":
        try:
            ids = [get_study(s).id for s in (args.study or list(studies()))]
            for sid in ids:
                resolve(get_study(sid), args.profile, {})
        except ParamError as err:
            return _fail(str(err))
        rows = redraw(ids, args.profile, args.repeats)
        for r in rows:
            print(
                f"  {r['study']:22s} {r['profile']}: "
                + (
                    f"failed: {r['error']}"
                    if "error" in r
                    else f"redraw median {r['median_s']:.3f} s, max {r['max_s']:.3f} s over "
                    f"{r['repeats']}; recomputed from cached models {r['recomputed_s']:.3f} s"
                )
            )
        slow = [r["study"] for r in rows if not r.get("within_goal")]
        print(
            f"ipkit: {len(rows) - len(slow)} of {len(rows)} notebooks redraw within "
            f"{REDRAW_GOAL_S:g} s" + (f"; not: {', '.join(slow)}" if slow else "")
        )
        return 1 if slow else 0
    if args.what == "ensemble":
        result = ensemble_speed(args.dataset, args.arch, args.members, args.epochs, args.batch_size)
        print(json.dumps(result, indent=2))
        print(
            f"{args.members} members together: {result['together_s']} s, one by one: "
            f"{result['one_by_one_s']} s -> {result['speedup']}x on {result['device']}"
        )
        return 0
    result = run(args.dataset, args.arch, args.epochs, args.batch_size)
    print(json.dumps(result, indent=2))
    print(
        f"ipkit trainer: {result['ipkit_s']} s, plain DataLoader loop: {result['plain_s']} s "
        f"-> {result['speedup']}x on {result['device']}"
    )
    return 0


def _profile_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--profile",
        default=os.environ.get("IPKIT_PROFILE", "default"),
        help="smoke | default | paper (default: default)",
    )


def count(text: str) -> int:
    """An option's positive whole number, written in ASCII digits (as ``-p`` values are)."""
    if not (text.isascii() and text.strip().isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not a positive whole number in ASCII digits (e.g. 2)")
    return int(text)


def amount(text: str) -> float:
    """An option's non-negative number, written in ASCII (``0.5``, ``2``)."""
    if not (text.isascii() and re.fullmatch(r"\d+(\.\d*)?|\.\d+", text.strip())):
        raise argparse.ArgumentTypeError(f"'{text[:40]}' is not a non-negative number in ASCII (e.g. 0.5)")
    return float(text)


def _parallel_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--jobs",
        type=count,
        default=1,
        help="runs at a time; more than 1 runs them as Ray tasks (default: 1, in this process)",
    )
    ap.add_argument(
        "--cpus-per-run", type=amount, help="CPUs (and threads) of each Ray run (default: the cluster's CPUs / --jobs)"
    )
    ap.add_argument(
        "--gpus-per-run", type=amount, help="GPUs of each Ray run (default: 1 when the cluster has GPUs, else 0)"
    )
    ap.add_argument(
        "--address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray sized to this machine)"
    )
    ap.add_argument(
        "--threads",
        type=count,
        help="CPU threads of each run (default: run: this process's, or a Ray run's "
        "CPUs; verify and sweep --sensitivity: the committed run's, so a setting "
        "equal to it reproduces it on the same machine)",
    )


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ipkit`` command."""
    ap = ArgumentParser(prog="ipkit", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="studies, their profiles and parameters").set_defaults(fn=cmd_list)
    run = sub.add_parser("run", help="execute study notebooks with papermill")
    run.add_argument("study", nargs="+", help="study ids (see `ipkit list`) or 'all'")
    _profile_option(run)
    run.add_argument(
        "-p",
        "--param",
        action="append",
        metavar="NAME=VALUE",
        help="set a parameter; lists are comma-separated (repeatable)",
    )
    run.add_argument(
        "--timings", action="store_true", help="print seconds per notebook section and per kind of work (timings.md)"
    )
    _parallel_options(run)
    run.set_defaults(fn=cmd_run)
    sw = sub.add_parser("sweep", help="run a study over a grid of settings and summarize its claims")
    sw.add_argument("study", help="study id (see `ipkit list`)")
    _profile_option(sw)
    sw.add_argument(
        "-p",
        "--param",
        action="append",
        metavar="NAME=A,B,C",
        help="sweep a parameter over these values; a list-valued one takes its sets "
        "separated by ';' (repeatable: the grid is every combination)",
    )
    sw.add_argument(
        "--seeds-sets", metavar="'0,1,2;101,102,103'", help="sweep the seeds over these sets (the same as -p seeds=...)"
    )
    sw.add_argument(
        "--id",
        help="the sweep's folder name (default: the parameters and a hash of the grid); "
        "with --sensitivity: run only this declared sweep",
    )
    sw.add_argument(
        "--sensitivity",
        action="store_true",
        help="run the study's declared 'what would make it hold' sweeps and name them in the profile's results.json",
    )
    sw.add_argument(
        "--alternatives",
        action="store_true",
        help="run the alternatives the study's defaults were chosen among (ALTERNATIVES), "
        "with the default seeds, and record each claim's verdict at each and "
        "whether it is robust",
    )
    _parallel_options(sw)
    sw.set_defaults(fn=cmd_sweep)
    ver = sub.add_parser("verify", help="rerun a study with other seeds and compare its verdicts")
    ver.add_argument("study", help="study id (see `ipkit list`)")
    ver.add_argument(
        "--seeds",
        default="101,102,103",
        help="seeds of the rerun, comma-separated; several reruns: sets separated by ';' (a sweep over seed sets)",
    )
    ver.add_argument("--profile", default="default", help="profile of the committed run to check")
    ver.add_argument(
        "-p", "--param", action="append", metavar="NAME=VALUE", help="set a parameter of the rerun (repeatable)"
    )
    ver.add_argument(
        "--record", action="store_true", help="store the comparison under 'stability' in the committed results.json"
    )
    _parallel_options(ver)
    ver.set_defaults(fn=cmd_verify)
    rep = sub.add_parser("report", help="write figures/README.md (and with --html the documentation site)")
    rep.add_argument(
        "--html",
        nargs="?",
        const="site",
        metavar="DIR",
        help="also build the documentation site (study pages, guides, executed "
        "notebooks; readable offline) into DIR (default: site), as `make docs`",
    )
    rep.set_defaults(fn=cmd_report)
    c = sub.add_parser("cache", help="list or clear the model cache")
    c.add_argument("action", choices=["ls", "clear"])
    c.add_argument("--recipe", help="with clear: only this recipe's entries")
    c.add_argument(
        "--temp",
        action="store_true",
        help="with clear: only temp files of interrupted writes (writer gone or over an hour "
        "old) and the scratch and partial run folders killed runs left",
    )
    c.set_defaults(fn=cmd_cache)
    b = sub.add_parser("bench", help="ipkit trainer vs a plain DataLoader loop, or ensemble training")
    b.add_argument("--dataset", default="mnist5k")
    b.add_argument("--arch", default="cnn")
    b.add_argument("--epochs", type=count, default=5)
    b.add_argument("--batch-size", type=count, default=128)
    b.add_argument(
        "--what",
        choices=["trainer", "ensemble", "redraw"],
        default="trainer",
        help="trainer: vs a DataLoader loop; ensemble: members together (vmap) vs one by "
        "one; redraw: each notebook's Explore redraw of a setting already drawn",
    )
    b.add_argument("--study", action="append", help="with --what redraw: a study (repeatable; default all)")
    b.add_argument("--profile", default="smoke", help="with --what redraw: the profile the notebooks run in")
    b.add_argument("--members", type=count, default=5, help="with --what ensemble: ensemble size")
    b.add_argument("--repeats", type=count, default=3, help="with --what redraw: redraws per notebook")
    b.set_defaults(fn=cmd_bench)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ipkit`` console script."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as done:  # --help, or a usage error already printed as one line
        return int(done.code or 0)
    if args.command in ("run", "sweep", "verify") and args.profile not in PROFILE_NAMES:
        return _fail(f"unknown profile '{args.profile}': choose one of {', '.join(PROFILE_NAMES)}")
    if args.command in ("run", "sweep", "verify", "bench"):
        try:
            _check_environment()
        except ParamError as err:
            return _fail(str(err))
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
