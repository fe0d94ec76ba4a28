"""The architecture registry: every model builds for 28- and 32-pixel inputs and exposes
features and head; bad names fail with the list of choices."""

import pytest
import torch

from ipkit.methods import models


@pytest.mark.parametrize("arch", list(models.ARCHS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_every_arch_builds_and_runs(arch, shape):
    net = models.build(arch, 7, shape, seed=0).eval()
    x = torch.rand(2, *shape)
    logits = net(x)
    assert logits.shape == (2, 7)
    assert torch.allclose(net.head(net.features(x)), logits, atol=1e-5)
    again = models.rebuild(net.spec)
    assert again.spec == net.spec


def test_seed_fixes_initial_weights():
    a, b = (models.build("cnn", 10, (1, 28, 28), seed=5) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_unknown_arch_lists_choices():
    with pytest.raises(ValueError, match="choose one of"):
        models.build("alexnet", 10, (1, 28, 28))


def test_seeded_build_and_transfer_leave_the_global_rng_alone():
    from ipkit.methods import transforms

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(32, 1, 8, 8, generator=g), torch.randint(0, 4, (32,), generator=g)
    torch.manual_seed(42)
    state = torch.get_rng_state()
    net = models.build("cnn", 10, (1, 8, 8), seed=5)
    transforms.transfer(net, x, y, num_classes=4, fraction=0.5, epochs=1, seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("shape", [(5, 16, 28, 28), (3, 4, 7, 7), (2, 1, 9, 6)])
def test_max_pool_equals_torchs_bit_for_bit_with_and_without_gradients(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-3, 4, shape, generator=g).float().relu()  # many equal values: ties
    ours, ref = models.MaxPool2d(2, ceil_mode=True), torch.nn.MaxPool2d(2, ceil_mode=True)
    for fmt in (torch.contiguous_format, torch.channels_last):
        xf = x.contiguous(memory_format=fmt)
        with torch.no_grad():
            out = ours(xf)
            assert torch.equal(out, ref(x))
            assert out.is_contiguous(memory_format=fmt)
        a, b = xf.clone().requires_grad_(), x.clone().requires_grad_()
        grad = torch.randn(out.shape, generator=g)
        assert torch.equal(torch.autograd.grad(ours(a), a, grad)[0], torch.autograd.grad(ref(b), b, grad)[0])
