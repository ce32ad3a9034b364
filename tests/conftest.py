import numpy as np
import pytest
import torch

from samprompt.models import TINY_ARCH, build_sam, weights_path
from samprompt.synthetic import make_scene

torch.set_num_threads(2)


def _kill_cli_after(args: list[str], manifest, lines: int, timeout: float = 120) -> int:
    """Run ``samprompt ARGS`` in a child process, ``kill -9`` it once ``manifest`` has ``lines`` lines;
    returns how many lines it had then (a kill mid-job, as a crash or an impatient user gives)."""
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "samprompt.cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if manifest.exists() and len(manifest.read_text().splitlines()) >= lines:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return len(manifest.read_text().splitlines()) if manifest.exists() else 0


@pytest.fixture()
def kill_cli_after():
    """:func:`_kill_cli_after`: run a samprompt command and kill -9 it part-way through its job."""
    return _kill_cli_after


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
