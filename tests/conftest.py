import numpy as np
import pytest
import torch

from samprompt.models import TINY_ARCH, build_sam, weights_path
from samprompt.synthetic import make_scene

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def random_sam():
    """A randomly initialised SAM of the tiny architecture (fixed seed)."""
    torch.manual_seed(0)
    model = build_sam(TINY_ARCH)
    # Random decoders give near-zero logits; scale the output so masks are non-trivial.
    return model.eval()


@pytest.fixture(scope="session")
def tiny_sam():
    """The shipped built-in model; skipped only while its weights are not built yet."""
    if not weights_path("tiny").exists():
        pytest.skip("built-in tiny weights not packaged yet")
    from samprompt.models import load_model

    return load_model("tiny")


@pytest.fixture()
def scene():
    return make_scene(3, size=(200, 256))


@pytest.fixture()
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_or_random_sam(random_sam):
    """The built-in model when packaged (real masks), else the random one."""
    if weights_path("tiny").exists():
        from samprompt.models import load_model

        return load_model("tiny")
    return random_sam
