"""The unpairing loss and its alignment penalties (ipkit.methods.unpairing)."""

import numpy as np
import pytest
import torch

from ipkit.methods import similarity, unpairing


def test_unpairing_loss_adds_lambda_times_gradient_cosine(trained):
    model, other, x, y = trained
    ce = unpairing.unpairing_loss(model, other, x, y, 0.0)
    gm = similarity.input_gradients(model, x, y).flatten(1)
    go = similarity.input_gradients(other, x, y).flatten(1)
    cos = torch.nn.functional.cosine_similarity(gm, go, dim=1)
    for penalty, term in (("signed", cos.mean()), ("abs", cos.abs().mean()), ("square", (cos**2).mean())):
        with_term = unpairing.unpairing_loss(model, other, x, y, 2.0, penalty)
        assert float((with_term - ce).detach()) == pytest.approx(2 * float(term), rel=1e-4)
    with pytest.raises(ValueError, match="penalty"):
        unpairing.unpairing_loss(model, other, x, y, 2.0, "cos")


def test_penalties_push_the_alignment_toward_zero_and_signed_toward_minus_one():
    for start in (-0.6, 0.6):
        steps = {}
        for penalty in unpairing.PENALTIES:
            cos = torch.tensor([start], requires_grad=True)
            unpairing.alignment_penalty(cos, penalty).sum().backward()
            steps[penalty] = -float(cos.grad)  # the direction gradient descent moves cos
        assert np.sign(steps["abs"]) == np.sign(steps["square"]) == -np.sign(start)
        assert steps["signed"] < 0  # the control always lowers cos, past zero too
