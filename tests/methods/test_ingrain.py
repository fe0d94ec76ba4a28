"""The ingrain loss: cross-entropy plus lambda times the KD term (ipkit.methods.ingrain)."""

import pytest
import torch.nn.functional as F

from ipkit.methods import ingrain
from ipkit.methods.train import kd_loss
from tests.helpers import _model, _pool


def test_ingrain_loss_is_cross_entropy_when_model_matches_ingrainer():
    model = _model()
    x, y = _pool(16)
    loss = ingrain.ingrain_loss(model, lam=3.0, temperature=5.0, n_carriers=4)
    ce = F.cross_entropy(model(x), y)
    assert float(loss(model, x, y).detach()) == pytest.approx(float(ce.detach()), rel=1e-4)


def test_ingrain_loss_adds_lambda_times_the_kd_term_unscaled():
    model, other = _model(0), _model(1)
    x, y = _pool(16)
    kd = kd_loss(model(x[:12]), (other(x[:12]) / 5.0).softmax(1), 5.0)
    ce = F.cross_entropy(model(x), y)
    loss = ingrain.ingrain_loss(other, lam=3.0, temperature=5.0, n_carriers=4)
    assert float(loss(model, x, y).detach()) == pytest.approx(float((ce + 3.0 * kd).detach()), rel=1e-4)
