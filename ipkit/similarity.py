"""How alike two models are, measured on their behaviour over a set of inputs.

- :func:`output_agreement`: share of inputs with the same predicted label;
- :func:`gradient_cosine`: mean cosine similarity of the input gradients of the loss
  (gradient alignment, as in TRS, Yang et al., NeurIPS 2021, and Hong et al., SaTML 2023).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .train import agreement


def output_agreement(a: nn.Module, b: nn.Module, x: Tensor) -> float:
    """Share of inputs in ``x`` on which ``a`` and ``b`` predict the same label."""
    return agreement(a, b, x)


def input_gradients(model: nn.Module, x: Tensor, y: Tensor, create_graph: bool = False) -> Tensor:
    """Gradients of the cross-entropy loss w.r.t. the inputs, one per example."""
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x, create_graph=create_graph)
    return grad


def gradient_cosine(a: nn.Module, b: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    """Mean over inputs of cos(grad_x L_a(x, y), grad_x L_b(x, y)), models in eval mode."""
    a.eval()
    b.eval()
    sims = []
    for i in range(0, len(x), batch_size):
        ga = input_gradients(a, x[i:i + batch_size], y[i:i + batch_size]).flatten(1)
        gb = input_gradients(b, x[i:i + batch_size], y[i:i + batch_size]).flatten(1)
        sims.append(F.cosine_similarity(ga, gb, dim=1, eps=1e-12))
    return float(torch.cat(sims).mean())
