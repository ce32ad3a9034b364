"""Scenes per second of each synthetic style (256 px), one process.

    python benchmarks/synthetic_speed.py [-n 300]
"""

import argparse
import time

from samprompt.synthetic import STYLES, make_scene

p = argparse.ArgumentParser()
p.add_argument("-n", type=int, default=300)
n = p.parse_args().n
for style in STYLES:
    t = time.perf_counter()
    for i in range(n):
        make_scene(i, style)
    print(f"{style:11s} {n / (time.perf_counter() - t):7.1f} scenes/s")
