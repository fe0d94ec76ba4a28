"""The trainer: it learns (a real accuracy on digits), is deterministic on the CPU, mixes
extra examples into every batch, and its loss helpers behave as documented."""

import pytest
import torch

from ipkit.methods import data, models, train
from ipkit.methods.train import kd_loss


def test_trainer_reaches_real_accuracy_on_digits():
    s = data.split("digits", seed=0, device="cpu")
    net = models.build("cnn", s.num_classes, s.in_shape, seed=0)
    train.fit(net, s.owner.x, s.owner.y, epochs=8, lr=0.05)
    assert train.evaluate(net, s.test.x, s.test.y) >= 0.9


def test_fit_is_deterministic_on_cpu():
    s = data.split("digits", seed=0, device="cpu")
    nets = []
    for _ in range(2):
        net = models.build("mlp", s.num_classes, s.in_shape, seed=1)
        train.fit(net, s.owner.x, s.owner.y, epochs=2, seed=7)
        nets.append(net)
    assert all(torch.equal(p, q) for p, q in zip(nets[0].parameters(), nets[1].parameters()))


def test_fit_survives_a_handful_of_steps():
    x, y = torch.rand(64, 1, 8, 8), torch.randint(0, 3, (64,))
    for steps in (1, 2, 4, 7):
        net = models.build("mlp", 3, (1, 8, 8), seed=0)
        hist = train.fit(net, x[: 16 * steps], y[: 16 * steps], epochs=1, batch_size=16)
        assert torch.isfinite(torch.tensor(hist.loss)).all()


def test_extra_examples_are_memorized():
    s = data.split("digits", seed=0, device="cpu")
    g = torch.Generator().manual_seed(0)
    xe = torch.rand(10, *s.in_shape, generator=g)
    ye = torch.randint(0, 10, (10,), generator=g)
    net = models.build("mlp", s.num_classes, s.in_shape, seed=0)
    train.fit(net, s.owner.x, s.owner.y, epochs=30, extra=(xe, ye), extra_per_batch=8)
    assert train.evaluate(net, xe, ye) == 1.0


def test_kd_loss_zero_for_matching_teacher_and_positive_otherwise():
    logits = torch.randn(8, 5)
    for t in (1.0, 4.0):
        assert abs(float(train.kd_loss(logits, (logits / t).softmax(1), t))) < 1e-5
    assert float(train.kd_loss(logits, torch.full((8, 5), 0.2), 1.0)) > 0


def test_soft_targets_use_default_cross_entropy():
    x = torch.rand(64, 1, 8, 8)
    y = torch.softmax(torch.randn(64, 10), 1)
    net = models.build("mlp", 10, (1, 8, 8), seed=0)
    hist = train.fit(net, x, y, epochs=2)
    assert len(hist.loss) == 2
    assert all(v == v for v in hist.loss)


def test_augment_keeps_shape_and_range():
    x = torch.rand(16, 3, 32, 32)
    out = train.augment_flip_crop(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert out.min() >= 0
    assert out.max() <= 1
    assert not torch.equal(out, x)


def test_conv_training_is_deterministic_in_its_chosen_layout():
    s = data.split("digits", seed=0, device="cpu")
    net = models.build("cnn", s.num_classes, s.in_shape, seed=1)
    assert train.best_memory_format(net, torch.device("cpu")) == torch.channels_last
    nets = []
    for _ in range(2):
        net = models.build("cnn", s.num_classes, s.in_shape, seed=1)
        train.fit(net, s.owner.x[:512], s.owner.y[:512], epochs=2, seed=7)
        nets.append(net)
    assert all(torch.equal(p, q) for p, q in zip(nets[0].state_dict().values(), nets[1].state_dict().values()))
    assert all(p.is_contiguous() for p in nets[0].parameters())


def test_deterministic_block_restores_torchs_nan_filling_setting():
    import torch.utils.deterministic as td

    assert td.fill_uninitialized_memory
    with train.deterministic(True):
        assert not td.fill_uninitialized_memory
        assert torch.empty(4).numel() == 4
    assert td.fill_uninitialized_memory


def test_bf16_training_on_the_cpu_only_for_large_conv_models_where_the_cpu_has_amx(monkeypatch):
    vgg, cnn = models.build("vgg", 10, (1, 28, 28), seed=0), models.build("cnn", 10, (1, 28, 28), seed=0)
    cpu = torch.device("cpu")
    monkeypatch.setenv("IPKIT_CPU_BF16", "1")
    assert (train.train_dtype(vgg, cpu), train.train_dtype(cnn, cpu)) == (torch.bfloat16, torch.float32)
    assert train.train_dtype(cnn, torch.device("cuda")) == torch.bfloat16
    monkeypatch.setenv("IPKIT_CPU_BF16", "0")
    assert train.train_dtype(vgg, cpu) == torch.float32
    monkeypatch.setenv("IPKIT_CPU_BF16", "yes")
    with pytest.raises(ValueError, match="IPKIT_CPU_BF16 must be 0 or 1.*unset it"):
        train.cpu_bf16()


def test_bf16_cpu_training_is_deterministic_and_differs_from_float32(monkeypatch):
    s = data.split("digits", seed=0, device="cpu")
    monkeypatch.setenv("IPKIT_CPU_BF16", "1")
    weights = []
    for precision in (None, None, torch.float32):
        net = models.build("vgg", s.num_classes, s.in_shape, seed=1)
        train.fit(net, s.owner.x[:128], s.owner.y[:128], epochs=1, batch_size=64, seed=7, precision=precision)
        assert all(p.dtype == torch.float32 for p in net.parameters())
        weights.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    assert torch.equal(weights[0], weights[1])
    assert not torch.equal(weights[0], weights[2])


def test_mlp_and_stacked_weights_keep_the_default_layout():
    mlp = models.build("mlp", 10, (1, 8, 8), seed=0)
    assert train.best_memory_format(mlp, torch.device("cpu")) == torch.contiguous_format
    stacked = torch.nn.Module()
    stacked.conv = torch.nn.Conv2d(1, 2, 3)
    stacked.w = torch.nn.Parameter(torch.zeros(5, 2, 1, 3, 3))
    assert train.best_memory_format(stacked, torch.device("cpu")) == torch.contiguous_format


def test_fit_leaves_global_rng_and_determinism_setting_alone():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 8, 8, generator=g), torch.randint(0, 3, (64,), generator=g)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    before = torch.are_deterministic_algorithms_enabled()
    net = models.build("cnn", 3, (1, 8, 8), dropout=0.2, seed=0)
    train.fit(net, x, y, epochs=1, batch_size=16, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.are_deterministic_algorithms_enabled() == before


def test_threads_follow_ipkit_threads(monkeypatch):
    monkeypatch.setenv("IPKIT_THREADS", "1")
    assert train.cpu_threads() == 1
    monkeypatch.setenv("IPKIT_THREADS", "zero")
    with pytest.raises(ValueError, match="IPKIT_THREADS"):
        train.cpu_threads()
    monkeypatch.delenv("IPKIT_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "\u0661")  # an Arabic-Indic one: not an ASCII count
    with pytest.raises(ValueError, match="OMP_NUM_THREADS"):
        train.cpu_threads()
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert train.cpu_threads() >= 1


def test_predict_returns_on_the_inputs_device_in_batches():
    net = models.build("mlp", 3, (1, 8, 8), seed=0)
    x = torch.rand(10, 1, 8, 8)
    whole = net.eval()(x)
    assert torch.allclose(train.predict(net, x, batch_size=3), whole, atol=1e-6)
    assert torch.allclose(train.predict(net, x, probs=True).sum(1), torch.ones(10))
    assert train.predict(net, x[:0]).numel() == 0


def test_step_hook_sees_every_optimiser_step_after_it_is_taken():
    d = data.split("digits", seed=0, device="cpu")
    model = models.build("mlp", d.num_classes, d.in_shape, seed=0)
    first = next(model.parameters()).detach().clone()
    seen = []

    def on_step(step, m):
        seen.append((step, not torch.equal(next(m.parameters()).detach(), first)))

    train.fit(model, d.owner.x[:100], d.owner.y[:100], epochs=2, batch_size=32, on_step=on_step)
    assert [s for s, _ in seen] == list(range(1, 9))
    assert all(moved for _, moved in seen)


def test_results_record_which_architectures_trained_in_bf16(monkeypatch):
    from ipkit.methods.train import bf16_archs

    monkeypatch.setenv("IPKIT_CPU_BF16", "1")
    assert bf16_archs(torch.device("cpu")) == ["resnet18", "vgg"]
    assert bf16_archs(torch.device("cuda")) == ["*"]
    monkeypatch.setenv("IPKIT_CPU_BF16", "0")
    assert bf16_archs(torch.device("cpu")) == []


def test_kd_loss_is_zero_for_identical_logits():
    logits = torch.randn(8, 5)
    for t in (1.0, 4.0, 10.0):
        assert float(kd_loss(logits, (logits / t).softmax(1), t)) == pytest.approx(0.0, abs=1e-5)
    assert float(kd_loss(logits, (torch.randn(8, 5) / 4).softmax(1), 4.0)) > 0
