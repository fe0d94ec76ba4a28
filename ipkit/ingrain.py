"""Distillation against watermarks, and the ingrain defence (Yang, Dang & Chang, 2019).

Yang et al. ("Effectiveness of Distillation Attack and Countermeasure on Neural Network
Watermarking", arXiv 1906.06046) show that a fresh student trained on a watermarked model's
soft outputs over ordinary data loses the watermark of existing schemes, and propose to
*ingrain* the watermark: a separate ingrainer model carries it, and the main model is
regularised to also represent the ingrainer's knowledge on ordinary inputs.

Only the abstract is public. Reconstructed here (:func:`ingrain_model`):

- the ingrainer ``g`` is a model of the same architecture trained on the watermark carriers
  mixed into every batch of a small slice of the owner's ordinary data (``ordinary`` images,
  which keep ``g`` a sensible classifier while the carriers dominate what it learns);
- the main model ``f`` is trained on the owner's data with the carriers mixed into every
  batch (as the baselines are) and the loss
  ``(CE(f(x), y) + lambda * T^2 * KL(softmax(g(x)/T) || softmax(f(x)/T))) / (1 + lambda)``,
  where the KL term runs over the ordinary inputs of each batch only; dividing by
  ``1 + lambda`` keeps the step size of the SGD schedule sane for large ``lambda``.

Every model comes from :mod:`ipkit.cache`. The study functions return pandas tables that the
notebook plots: :func:`schemes_table` (watermark before / after distillation),
:func:`lambda_sweep`, :func:`robustness_table` and :func:`temperature_sweep`.
"""
from __future__ import annotations

from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import cache, data, models, recipes, transforms
from . import watermark as wmk
from .data import Splits
from .study import ParamError
from .train import evaluate, fit, kd_loss, model_device
from .watermark import WatermarkSet

SOURCE, TARGET = 0, 1  # the content and noise schemes relabel class 0 images as class 1


def carriers(s: Splits, scheme: str, count: int, seed: int = 0) -> WatermarkSet:
    """The carriers of ``scheme`` for the owner of split ``s`` (see :func:`ipkit.watermark.scheme_set`);
    content and noise images come from the owner's data, so the attacker never holds them."""
    return wmk.scheme_set(scheme, count, (s.owner.x, s.owner.y), s.num_classes, seed=seed,
                          source=SOURCE, target=TARGET)


def ingrainer(s: Splits, arch: str, wm: WatermarkSet, *, epochs: int, ordinary: int = 500,
              seed: int = 0) -> nn.Module:
    """The ingrainer ``g``: ``arch`` trained on the first ``ordinary`` owner images with the
    carriers ``wm`` mixed into every batch (reconstructed; see the module docstring)."""
    settings = recipes.train_settings(s, epochs)
    n = min(ordinary, len(s.owner))
    params = dict(split=s.fingerprint, arch=arch, seed=seed, fit=settings, ordinary=n,
                  wm=recipes.digest(wm.x, wm.y))

    def train(model: nn.Module) -> dict:
        wmk.embed(model, s.owner.x[:n], s.owner.y[:n], wm, seed=seed, desc="ingrainer", **settings)
        return {"test_acc": evaluate(model, s.test.x, s.test.y), "wm_acc": wmk.accuracy(model, wm)}

    return cache.cached_model("ingrainer", params, lambda: recipes.fresh_model(s, arch, 4000 + seed), train)


def ingrain_loss(teacher: nn.Module, lam: float, temperature: float, n_carriers: int):
    """The reconstructed ingrain loss for :func:`ipkit.train.fit` with ``n_carriers`` carriers
    appended to each batch: ``(CE + lam * T^2 * KL(g || f) on the ordinary rows) / (1 + lam)``."""
    def loss(model: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
        logits = model(xb)
        ce = F.cross_entropy(logits, yb)
        ordinary = slice(0, len(xb) - n_carriers)
        with torch.no_grad():
            target = (teacher(xb[ordinary]).float() / temperature).softmax(1)
        return (ce + lam * kd_loss(logits[ordinary], target, temperature)) / (1.0 + lam)

    return loss


def ingrain_model(s: Splits, arch: str, wm: WatermarkSet, *, lam: float, temperature: float,
                  epochs: int, ordinary: int = 500, per_batch: int = 16, seed: int = 0) -> nn.Module:
    """The owner's model watermarked with ingrain (Yang et al., reconstructed form): trained on
    ``s.owner`` with the carriers mixed into every batch and the loss of :func:`ingrain_loss`
    against the :func:`ingrainer` at weight ``lam`` and temperature ``temperature``."""
    if lam < 0 or temperature <= 0:
        raise ValueError(f"ingrain needs lambda >= 0 and temperature > 0, got {lam} and {temperature}")
    g = ingrainer(s, arch, wm, epochs=epochs, ordinary=ordinary, seed=seed)
    settings = recipes.train_settings(s, epochs)
    params = dict(split=s.fingerprint, arch=arch, seed=seed, fit=settings, lam=lam, temperature=temperature,
                  per_batch=per_batch, ingrainer=g.ipkit_key)

    def train(model: nn.Module) -> dict:
        fit(model, s.owner.x, s.owner.y, loss=ingrain_loss(g.eval(), lam, temperature, per_batch),
            extra=(wm.x.to(s.owner.x.device), wm.y.to(s.owner.x.device)), extra_per_batch=per_batch,
            seed=seed, desc=f"ingrain lambda={lam:g}", **settings)
        return {"test_acc": evaluate(model, s.test.x, s.test.y), "wm_acc": wmk.accuracy(model, wm)}

    return cache.cached_model("ingrain", params, lambda: recipes.fresh_model(s, arch, seed), train)


def distilled(teacher: nn.Module, s: Splits, student_arch: str, *, temperature: float, epochs: int,
              seed: int = 0) -> nn.Module:
    """The cached result of :func:`ipkit.transforms.distillation_attack` on ``teacher`` (a cached
    model) with the attacker's pool ``s.attacker.x``."""
    settings = recipes.train_settings(s, epochs)
    settings.pop("epochs")
    params = dict(teacher=teacher.ipkit_key, split=s.fingerprint, arch=student_arch,
                  temperature=temperature, epochs=epochs, seed=seed, fit=settings)

    def train(model: nn.Module) -> dict:
        student = transforms.distillation_attack(teacher, s.attacker.x, student_arch, temperature=temperature,
                                                 epochs=epochs, seed=seed, **settings)
        model.load_state_dict(student.state_dict())
        return {"test_acc": evaluate(model, s.test.x, s.test.y)}

    return cache.cached_model("distilled", params, lambda: recipes.fresh_model(s, student_arch, 3000 + seed), train)


def watermarked(s: Splits, arch: str, scheme: str, p: Any, seed: int, lam: float | None = None,
                temperature: float | None = None) -> tuple[nn.Module, WatermarkSet]:
    """The owner's model and its carriers for ``scheme`` (a baseline, or ``ingrain``, which uses
    ``p.ingrain_scheme``'s carriers); ``p`` holds the notebook's parameters."""
    if scheme == "ingrain":
        wm = carriers(s, p.ingrain_scheme, p.wm_count, seed)
        model = ingrain_model(s, arch, wm, lam=p.ingrain_lambda if lam is None else lam,
                              temperature=p.ingrain_temperature if temperature is None else temperature,
                              epochs=p.epochs, ordinary=p.ingrainer_ordinary, seed=seed)
        return model, wm
    wm = carriers(s, scheme, p.wm_count, seed)
    return recipes.owner_model(s, arch, epochs=p.epochs, seed=seed, wm=wm), wm


def independents(s: Splits, arch: str, epochs: int, n_models: int = 3) -> list[nn.Module]:
    """The ``n_models`` never-watermarked models (trained on the attacker pool's true labels)
    that a carrier set's floor is measured on (:func:`ipkit.watermark.floor`)."""
    return [recipes.independent_model(s, arch, epochs=epochs, seed=i) for i in range(n_models)]


def schemes_table(s: Splits, p: Any, progress=lambda it, **kw: it) -> pd.DataFrame:
    """Figure 1's data: per seed and scheme (the baselines, ``ingrain`` and ``none``, the plain
    model), the teacher's test and watermark accuracy, the distilled student's, and the floor."""
    rows = []
    indep = independents(s, p.arch, p.epochs)
    for seed in progress(p.seeds, desc="seeds"):
        plain = recipes.owner_model(s, p.arch, epochs=p.epochs, seed=seed)
        student = distilled(plain, s, p.student_arch, temperature=p.distill_temperature,
                            epochs=p.distill_epochs, seed=seed)
        rows.append(dict(seed=seed, scheme="none", teacher_acc=evaluate(plain, s.test.x, s.test.y),
                         student_acc=evaluate(student, s.test.x, s.test.y)))
        for scheme in [*p.schemes, "ingrain"]:
            teacher, wm = watermarked(s, p.arch, scheme, p, seed)
            student = distilled(teacher, s, p.student_arch, temperature=p.distill_temperature,
                                epochs=p.distill_epochs, seed=seed)
            fl = wmk.floor(indep, wm)
            rows.append(dict(seed=seed, scheme=scheme, teacher_acc=evaluate(teacher, s.test.x, s.test.y),
                             student_acc=evaluate(student, s.test.x, s.test.y),
                             wm_before=wmk.accuracy(teacher, wm), wm_after=wmk.accuracy(student, wm), floor=fl))
    return pd.DataFrame(rows)


def lambda_sweep(s: Splits, p: Any, lambdas: list[float], progress=lambda it, **kw: it) -> pd.DataFrame:
    """Figure 2's data: per seed and ingrain weight ``lambda``, the ingrain model's clean test
    accuracy and watermark accuracy, and its distilled student's watermark accuracy."""
    rows = []
    for seed in p.seeds:
        for lam in progress(lambdas, desc=f"lambda sweep, seed {seed}"):
            model, wm = watermarked(s, p.arch, "ingrain", p, seed, lam=lam)
            student = distilled(model, s, p.student_arch, temperature=p.distill_temperature,
                                epochs=p.distill_epochs, seed=seed)
            rows.append(dict(seed=seed, lam=lam, clean_acc=evaluate(model, s.test.x, s.test.y),
                             wm_before=wmk.accuracy(model, wm), wm_after=wmk.accuracy(student, wm),
                             student_acc=evaluate(student, s.test.x, s.test.y)))
    return pd.DataFrame(rows)


def _transforms(model: nn.Module, s: Splits, p: Any, seed: int) -> dict[str, nn.Module]:
    x, y = s.attacker.x, s.attacker.y
    out = {"original": model,
           "fine-tune last": transforms.finetune(model, x, y, layers="last", epochs=p.finetune_epochs, seed=seed),
           "fine-tune all": transforms.finetune(model, x, y, layers="all", epochs=p.finetune_epochs, seed=seed)}
    for r in p.prune_ratios:
        out[f"prune {r:.0%}"] = transforms.prune(model, r)
    top = max(p.prune_ratios)
    out[f"prune {top:.0%} + fine-tune"] = transforms.prune_finetune(model, top, x, y, epochs=p.finetune_epochs,
                                                                     seed=seed)
    for b in p.quant_bits:
        out[f"quantize {b} bits"] = transforms.fake_quantize(model, b)
    out["dynamic int8"] = transforms.quantize_int8(model)
    return out


def robustness_table(s: Splits, p: Any, progress=lambda it, **kw: it) -> pd.DataFrame:
    """Figure 3's data: watermark and test accuracy of every baseline and of ingrain after
    fine-tuning (last / all layers, on the attacker's labelled pool), global magnitude pruning
    at each ratio (the largest also followed by fine-tuning) and quantization (n-bit weights
    per output channel, dynamic int8)."""
    rows = []
    for seed in p.seeds:
        for scheme in progress([*p.schemes, "ingrain"], desc=f"robustness, seed {seed}"):
            model, wm = watermarked(s, p.arch, scheme, p, seed)
            for name, m in _transforms(model, s, p, seed).items():
                dev = model_device(m)
                rows.append(dict(seed=seed, scheme=scheme, transform=name, wm_acc=wmk.accuracy(m, wm),
                                 test_acc=evaluate(m, s.test.x.to(dev), s.test.y.to(dev))))
    return pd.DataFrame(rows)


def temperature_sweep(s: Splits, p: Any, schemes: list[str], temperatures: list[float],
                      progress=lambda it, **kw: it) -> pd.DataFrame:
    """Figure 4's data: watermark and test accuracy of students distilled at each
    temperature from the models of ``schemes`` (e.g. the best baseline and ``ingrain``)."""
    rows = []
    for seed in p.seeds:
        for scheme in schemes:
            teacher, wm = watermarked(s, p.arch, scheme, p, seed)
            for t in progress(temperatures, desc=f"temperatures, {scheme}, seed {seed}"):
                student = distilled(teacher, s, p.student_arch, temperature=t, epochs=p.distill_epochs, seed=seed)
                rows.append(dict(seed=seed, scheme=scheme, temperature=t, wm_after=wmk.accuracy(student, wm),
                                 student_acc=evaluate(student, s.test.x, s.test.y)))
    return pd.DataFrame(rows)


def check_params(values: dict) -> None:
    """Rules the parameter ranges cannot state (see :data:`ipkit.study.CHECKS`): the student
    must not be larger than the suspect, and the content / noise carriers must fit the
    owner's class-0 images. Raises a one-line ParamError naming the fix."""
    s = data.split(values["dataset"], seed=0, device="cpu")
    arch, student = values["arch"], values["student_arch"]
    sizes = {a: models.count_parameters(models.build(a, s.num_classes, s.in_shape)) for a in (arch, student)}
    if sizes[student] > sizes[arch]:
        raise ParamError(f"student_arch '{student}' ({sizes[student]:,} weights) is larger than arch "
                         f"'{arch}' ({sizes[arch]:,}): the attack uses the same or a smaller student")
    available = int((s.owner.y == SOURCE).sum())
    stamped = {"content", "noise"} & {*values["schemes"], values["ingrain_scheme"]}
    if values["wm_count"] > available and stamped:
        raise ParamError(f"wm_count={values['wm_count']} exceeds the {available} owner images of class {SOURCE} "
                         "that the content and noise schemes stamp: lower wm_count")


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Means over seeds of :func:`schemes_table` per scheme, with ``above_floor`` (watermark
    accuracy after distillation minus the floor) and ``acc_drop`` (teacher minus student test
    accuracy)."""
    out = table.drop(columns="seed").groupby("scheme", sort=False).mean()
    out["above_floor"] = out.wm_after - out.floor
    out["acc_drop"] = out.teacher_acc - out.student_acc
    return out


def plot_carriers(s: Splits, schemes: list[str], count: int, seed: int, per_row: int = 8):
    """A grid of the first carriers of each scheme, titled with their watermark labels."""
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(schemes))
    fig, axes = plt.subplots(len(names), per_row, figsize=(per_row * 0.9, len(names) * 1.05), squeeze=False)
    for r, name in enumerate(names):
        wm = carriers(s, name, count, seed)
        for c, ax in enumerate(axes[r]):
            ax.axis("off")
            if c < len(wm):
                img = wm.x[c].permute(1, 2, 0).squeeze(-1).numpy()
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
                ax.set_title(f"-> {int(wm.y[c])}", fontsize=8)
        axes[r][0].text(-0.15, 0.5, name, transform=axes[r][0].transAxes, ha="right", va="center")
    return fig


def plot_schemes(table: pd.DataFrame):
    """Figure 1: watermark accuracy before / after distillation with floor ticks (left) and
    test accuracy of teacher and student (right), per scheme (means, std error bars)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.8), gridspec_kw={"width_ratios": [1.2, 1]})
    marked = table[table.scheme != "none"]
    wm = marked.melt(id_vars=["seed", "scheme"], value_vars=["wm_before", "wm_after"], var_name="model",
                     value_name="watermark accuracy")
    wm["model"] = wm.model.map({"wm_before": "owner (before)", "wm_after": "student (after)"})
    sns.barplot(data=wm, x="scheme", y="watermark accuracy", hue="model", errorbar="sd", capsize=0.1, ax=a)
    floors_ = marked.groupby("scheme", sort=False).floor.mean()
    for i, f in enumerate(floors_):
        a.plot([i - 0.4, i + 0.4], [f, f], color="black", lw=2, label="floor" if i == 0 else None)
    a.set(ylim=(0, 1.05), xlabel="", title="Watermark before and after distillation")
    a.legend(loc="upper left", bbox_to_anchor=(0, -0.12), ncol=3, frameon=False)
    acc = table.melt(id_vars=["seed", "scheme"], value_vars=["teacher_acc", "student_acc"], var_name="model",
                     value_name="test accuracy")
    acc["model"] = acc.model.map({"teacher_acc": "owner", "student_acc": "student"})
    sns.barplot(data=acc, x="scheme", y="test accuracy", hue="model", errorbar="sd", capsize=0.1, ax=b)
    lo = max(0.0, float(acc["test accuracy"].min()) - 0.1)
    b.set(ylim=(lo, 1.0), xlabel="", title="Test accuracy")
    b.legend(loc="upper left", bbox_to_anchor=(0, -0.12), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def plot_lambda(sweep: pd.DataFrame, floor_value: float):
    """Figure 2: clean test accuracy against watermark accuracy after distillation, one point
    per ingrain weight (mean over seeds, std bars), with the floor as a dashed line."""
    import matplotlib.pyplot as plt

    g = sweep.groupby("lam")[["clean_acc", "wm_after"]]
    mean, std = g.mean(), g.std().fillna(0)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(mean.clean_acc, mean.wm_after, xerr=std.clean_acc, yerr=std.wm_after, marker="o", capsize=3)
    for lam, row in mean.iterrows():
        ax.annotate(f"lambda={lam:g}", (row.clean_acc, row.wm_after), textcoords="offset points", xytext=(5, 5))
    ax.axhline(floor_value, ls="--", color="black", label="floor")
    ax.set(xlabel="clean test accuracy of the ingrain model", ylabel="watermark accuracy after distillation",
           ylim=(-0.02, 1.02), title="Ingrain weight: accuracy vs robustness")
    ax.legend(frameon=False)
    return fig


def plot_robustness(robust: pd.DataFrame):
    """Figure 3: a heatmap of watermark accuracy (mean over seeds) per transformation and scheme."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    grid = robust.pivot_table(index="transform", columns="scheme", values="wm_acc", sort=False)
    fig, ax = plt.subplots(figsize=(1.3 * grid.shape[1] + 2.5, 0.38 * grid.shape[0] + 1.2))
    sns.heatmap(grid, annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", ax=ax,
                cbar_kws={"label": "watermark accuracy"})
    ax.set(xlabel="", ylabel="", title="Watermark accuracy after each transformation")
    return fig


def plot_temperature(temps: pd.DataFrame, summary: pd.DataFrame):
    """Figure 4: watermark accuracy (left) and student test accuracy (right) against the
    attack temperature, per scheme, with each scheme's floor dashed."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.6))
    sns.lineplot(data=temps, x="temperature", y="wm_after", hue="scheme", marker="o", errorbar="sd", ax=a)
    for i, scheme in enumerate(temps.scheme.unique()):
        a.axhline(summary.loc[scheme, "floor"], ls="--", color=sns.color_palette()[i], lw=1)
    a.set(xscale="log", ylim=(-0.02, 1.02), ylabel="watermark accuracy of the student",
          title="Attack temperature (dashed: floors)")
    sns.lineplot(data=temps, x="temperature", y="student_acc", hue="scheme", marker="o", errorbar="sd", ax=b)
    b.set(xscale="log", ylabel="student test accuracy", title="Student accuracy")
    fig.tight_layout()
    return fig


def plot_explore(s: Splits, p: Any, scheme: str, lam: float, temperature: float, seed: int):
    """The Explore view: owner model of ``scheme`` (ingrain at weight ``lam``) and its student
    distilled at ``temperature``: watermark and test accuracy bars with the floor dashed."""
    import matplotlib.pyplot as plt

    teacher, wm = watermarked(s, p.arch, scheme, p, seed, lam=lam)
    student = distilled(teacher, s, p.student_arch, temperature=temperature, epochs=p.distill_epochs, seed=seed)
    fl = wmk.floor(independents(s, p.arch, p.epochs), wm)
    vals = {"owner": (wmk.accuracy(teacher, wm), evaluate(teacher, s.test.x, s.test.y)),
            "student": (wmk.accuracy(student, wm), evaluate(student, s.test.x, s.test.y))}
    fig, ax = plt.subplots(figsize=(6, 3.4))
    xs = range(2)
    for i, (name, (w, acc)) in enumerate(vals.items()):
        ax.bar([x + 0.38 * i for x in xs], [w, acc], width=0.36, label=name)
    ax.axhline(fl, ls="--", color="black", label="floor")
    ax.set_xticks([x + 0.19 for x in xs], ["watermark accuracy", "test accuracy"])
    extra = f", lambda={lam:g}" if scheme == "ingrain" else ""
    ax.set(ylim=(0, 1.05), title=f"{scheme}{extra}, attack T={temperature:g}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig
