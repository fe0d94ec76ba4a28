"""Quantized siblings: 32 bits is the identity, fewer bits give fewer levels and still
gradients (ipkit.methods.compression)."""

import torch

from ipkit.methods import compression, similarity


def test_quantization_at_32_bits_is_the_identity(trained):
    model, _, x, _ = trained
    q = compression.calibrate(compression.quantize_model(model, 32), x)
    assert torch.equal(q(x), model(x))


def test_quantized_sibling_has_bits_levels_and_gradients(trained):
    model, _, x, y = trained
    q = compression.calibrate(compression.quantize_model(model, 4), x)
    layer = next(m for m in q.modules() if isinstance(m, compression.QuantLinear))
    w = layer._q_weight(layer.weight)
    assert all(len(torch.unique(row)) <= 15 for row in w)
    assert float(similarity.input_gradients(q, x, y).abs().sum()) > 0
    assert compression.bits_of(q) == 4
    assert compression.bits_of(model) == 32
