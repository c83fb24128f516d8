"""``python -m stylecore.gpubundle DIR`` (``make gpu-bundle``): what an offline GPU host needs to run
``stylecore.gpucheck`` in one call, in one folder under 64 MiB.

The folder gets the float16 weights bundle (``stylecore.weights export``), the wheels such a host
lacks (Keras and the two small packages it needs that JAX, optax and flax do not bring: namex and
optree, built for the host's Python), and ``run.sh``, which installs the wheels where Keras is
missing, points ``STYLECORE_WEIGHTS`` at the bundle and runs the check on JAX:

    python -m stylecore.gpubundle .gpu            # here, with network
    bash .gpu/run.sh                              # there, from the repository's root
    JAX_PLATFORMS=cpu bash .gpu/run.sh --cpu --rows 64 --evaluations 40 --run-rows 64   # a dry run here

docs/DEPLOY.md says which host it was made for (the lent H200: Python 3.12, JAX 0.11, no Keras).
"""

import argparse
import subprocess
import sys
from pathlib import Path

from .weights import export

WHEELS = ("keras==3.15.1", "namex==0.1.0", "optree==0.20.0")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
LIMIT_BYTES = 64 * 2 ** 20

RUN_SH = """#!/usr/bin/env bash
# Made by `python -m stylecore.gpubundle`: runs `python -m stylecore.gpucheck` on JAX on a host without
# network, from the repository's root; arguments go to gpucheck. The figures go to $OUT/gpucheck.json.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
if ! "$python" -c "import keras" 2>/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/stylecore-site "$here"/*.whl
  export PYTHONPATH=/tmp/stylecore-site${PYTHONPATH:+:$PYTHONPATH}
fi
export KERAS_BACKEND=${KERAS_BACKEND:-jax} STYLECORE_WEIGHTS="$here/stylecore-weights.npz" PYTHONUNBUFFERED=1
export STYLECORE_CACHE_DIR=${STYLECORE_CACHE_DIR:-/tmp/stylecore-cache}
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$python" -c "import jax, keras, optax; print('jax', jax.__version__, 'keras', keras.__version__, 'optax', optax.__version__, jax.devices())"
"$python" -m stylecore.gpucheck --json "${OUT:-/tmp}/gpucheck.json" "$@"
"""


def download_wheels(directory, python_version):
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
               python_version, "--implementation", "cp", "-d", str(directory), *WHEELS]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    subprocess.run(command, check=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m stylecore.gpubundle", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="the folder to fill (e.g. .gpu, ignored by git)")
    parser.add_argument("--python-version", default="3.12", help="the GPU host's Python (default 3.12)")
    args = parser.parse_args(argv)
    directory = Path(args.directory)
    directory.mkdir(parents=True, exist_ok=True)
    download_wheels(directory, args.python_version)
    export(directory, "float16")
    run = directory / "run.sh"
    run.write_text(RUN_SH, encoding="utf-8")
    run.chmod(0o755)
    size = sum(path.stat().st_size for path in directory.iterdir() if path.is_file())
    print(f"{directory}: {size / 2 ** 20:.1f} MiB ({', '.join(sorted(p.name for p in directory.iterdir()))})")
    if size > LIMIT_BYTES:
        print(f"error: more than {LIMIT_BYTES // 2 ** 20} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
