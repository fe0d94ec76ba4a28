"""The catalog of architectures: which images each one takes (ipkit.core.catalog)."""

import pytest
import torch

from ipkit.core import catalog
from ipkit.methods import models


@pytest.mark.parametrize("arch", list(catalog.ARCHS))
def test_the_catalog_says_which_images_an_architecture_takes(arch):
    """:func:`ipkit.core.catalog.fits` agrees with a forward pass on each dataset's shape."""
    for dataset, shape in catalog.SHAPES.items():
        try:
            model = models.build(arch, 10, shape, seed=0).eval()
            with torch.no_grad():
                model(torch.zeros(2, *shape))
            works = True
        except (RuntimeError, ValueError):
            works = False
        assert works == (catalog.fits(arch, dataset) is None), (arch, dataset)
