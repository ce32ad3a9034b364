"""The README as a new user meets it: every command block runs as written, in order, in an empty folder.

The two set-up blocks at the top (pip install, then the tests) are what CI itself runs, so only the
main job's command of the first one runs here; every later ```bash and ```python block runs in README
order in one temporary folder, so that each block finds the inputs an earlier one made (about five
minutes on two cores: the README's own data sizes). Lines that are comments (`#`) are not run. A
`samprompt annotate` line starts the server, waits until it answers and stops it.
"""

import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
BLOCK = re.compile(r"```(bash|python)\n(.*?)```", re.S)
SETUP_BLOCKS = 2


def readme_blocks() -> list[tuple[str, str]]:
    """The blocks to run: the main job's command from the first set-up block (after its installs), then every
    block after the set-up ones."""
    blocks = BLOCK.findall(README.read_text())
    assert all("pip install" in code for _, code in blocks[:SETUP_BLOCKS])
    main_job = blocks[0][1].strip().split(" && ")[-1]
    assert main_job.startswith("samprompt demo")
    return [("bash", main_job + "\n"), *blocks[SETUP_BLOCKS:]]


def _annotate(line: str, cwd: Path, env: dict) -> None:
    """Start the annotator as the README says, check that it serves its page, stop it."""
    port = 7800 + os.getpid() % 150
    args = shlex.split(line.split("#")[0]) + ["--port", str(port)]
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(240):
            try:
                assert urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200
                return
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        raise AssertionError("the annotator did not answer")
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.timeout(1500)
def test_every_readme_block_runs_in_order_in_an_empty_folder(tmp_path):
    env = {**os.environ, "SAMPROMPT_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "2"}
    timings = []
    for kind, code in readme_blocks():
        start = time.perf_counter()
        if kind == "python":
            run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
            assert run.returncode == 0, f"README python block failed:\n{code}\n{run.stdout}\n{run.stderr}"
        else:
            for line in code.splitlines():
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                if line.startswith("samprompt annotate"):
                    _annotate(line, tmp_path, env)
                    continue
                run = subprocess.run(["bash", "-c", f"set -eo pipefail; {line}"], cwd=tmp_path, env=env,
                                     capture_output=True, text=True)
                assert run.returncode == 0, f"README line failed: {line}\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
                timings.append((round(time.perf_counter() - start, 1), line[:70]))
                start = time.perf_counter()
        timings.append((round(time.perf_counter() - start, 1), code.splitlines()[0][:70]))
    print("\n".join(f"{t:7.1f} s  {what}" for t, what in timings))
