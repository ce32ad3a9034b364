"""What the benchmarks share: the median wall time of a call, and the machine line."""

from __future__ import annotations

import os
import platform
import statistics
import time

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")


def machine() -> dict:
    """The CPU a benchmark ran on: model, cores, the flags that decide the fast paths, torch's capability."""
    import torch

    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model in ("", platform.machine(), platform.processor()):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:  # not Linux: the flags stay unknown
        pass
    from samprompt.encoders import bf16_supported

    return {"cpu": model, "cores": os.cpu_count(), "flags": [f for f in FLAGS if f in flags],
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": bf16_supported(torch.device("cpu"))}


def machine_line(m: dict | None = None) -> str:
    """One line of :func:`machine` for a table's caption."""
    m = m or machine()
    return (f"{m['cpu']}, {m['cores']} cores ({m['torch_threads']} torch threads), flags "
            f"{', '.join(m['flags']) or 'none of ' + '/'.join(FLAGS)}, PyTorch {m['torch']} "
            f"({m['cpu_capability']}), native bf16: {'yes' if m['native_bf16'] else 'no'}")


def median_time(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn()``."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)
