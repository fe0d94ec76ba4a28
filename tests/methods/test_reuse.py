"""ipkit.methods.reuse: ModelDiff's reuse types as a registry, and what each derivation makes."""

import pytest
import torch

from ipkit.methods import models, reuse, train, transforms

PAPER_TYPES = (
    "transfer-10",
    "transfer-50",
    "transfer-100",
    "prune-20",
    "prune-50",
    "prune-80",
    "quant-int8",
    "quant-fp16",
    "distill",
    "steal-same",
    "steal-other",
)


@pytest.fixture(scope="module")
def parent(digits):
    net = models.build("mlp", digits.num_classes, digits.in_shape, seed=0)
    train.fit(net, digits.owner.x, digits.owner.y, epochs=15)
    return net


def test_names_are_the_papers_eleven_types_in_order():
    assert reuse.names() == PAPER_TYPES


@pytest.mark.parametrize("name", PAPER_TYPES)
def test_parse_gives_back_the_name(name):
    assert reuse.parse(name).name == name


def test_parse_reads_kind_and_level():
    r = reuse.parse("transfer-50")
    assert (r.kind, r.level, r.fraction) == ("transfer", "50", 0.5)
    assert reuse.parse("distill").level == ""


@pytest.mark.parametrize("bad", ["transfer-30", "prune", "quant-int4", "distill-10", "steal", "finetune"])
def test_an_unknown_type_names_the_choices(bad):
    with pytest.raises(ValueError, match=f"unknown reuse type '{bad}': choose from transfer-10, "):
        reuse.parse(bad)


def test_only_quantizations_train_nothing():
    assert [n for n in PAPER_TYPES if not reuse.trains(reuse.parse(n))] == ["quant-int8", "quant-fp16"]


def test_quantized_copy_keeps_its_float_parent(parent, digits):
    q = reuse.quantized(parent, reuse.parse("quant-fp16"))
    assert q.float_parent is parent
    assert train.agreement(parent, q, digits.test.x) > 0.99
    with pytest.raises(ValueError, match="not a quantization"):
        reuse.quantized(parent, reuse.parse("distill"))
    with pytest.raises(ValueError, match="trains nothing"):
        reuse.train_into(parent, reuse.parse("quant-int8"), parent, reuse.Inputs(digits.owner.x))


def test_prune_zeroes_its_share_of_weights_and_keeps_the_parent(parent, digits):
    before = [p.clone() for p in parent.parameters()]
    into = models.build("mlp", digits.num_classes, digits.in_shape, seed=1)
    fit = dict(epochs=1, lr=0.01)
    reuse.train_into(parent, reuse.parse("prune-50"), into, reuse.Inputs(digits.owner.x, digits.owner.y, fit=fit))
    assert transforms.sparsity(into) == pytest.approx(0.5, abs=0.02)
    assert all(torch.equal(a, b) for a, b in zip(before, parent.parameters()))


def test_transfer_gives_the_new_tasks_head(parent, digits):
    into = models.build("mlp", 3, digits.in_shape, seed=1)
    y = digits.attacker.y % 3
    job = reuse.Inputs(digits.attacker.x, y, classes=3, fit=dict(epochs=1))
    reuse.train_into(parent, reuse.parse("transfer-10"), into, job)
    assert into(digits.test.x[:4]).shape == (4, 3)


def test_a_thief_learns_the_parent_within_its_budget(parent, digits):
    into = models.build("mlp", digits.num_classes, digits.in_shape, seed=3)
    job = reuse.Inputs(digits.attacker.x, pool=digits.attacker.x, budget=500, fit=dict(epochs=15))
    reuse.train_into(parent, reuse.parse("steal-same"), into, job)
    assert train.agreement(parent, into, digits.test.x) > 0.8
    with pytest.raises(ValueError, match="exceeds the attacker pool"):
        too_many = reuse.Inputs(digits.attacker.x, pool=digits.attacker.x[:10], budget=500)
        reuse.train_into(parent, reuse.parse("steal-other"), into, too_many)


def test_a_distilled_student_follows_its_teacher(parent, digits):
    into = models.build("mlp", digits.num_classes, digits.in_shape, seed=4)
    job = reuse.Inputs(digits.owner.x, fit=dict(epochs=15), temperature=4.0)
    reuse.train_into(parent, reuse.parse("distill"), into, job)
    assert train.agreement(parent, into, digits.test.x) > 0.8
