"""Cold import of the Lambda handler, as a fresh Lambda container does it: a new interpreter, no writable
bytecode cache (PYTHONDONTWRITEBYTECODE), the built function and layer from `sam build`, boto3 as the runtime
provides it. Compares the build as shipped (unchecked-hash .pyc) with the same files without bytecode, and with
the botocore that aws-xray-sdk used to pull into the layer (the previous build).

    python bench/cold_start.py --python /path/to/python3.13 --build-dir .aws-sam/build
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 7
PROBE = "import time; t = time.perf_counter(); import app; print((time.perf_counter() - t) * 1000)"


def pinned(name: str) -> str:
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        if line.startswith(f"{name}=="):
            return line.strip()
    raise SystemExit(f"{name} is not pinned in requirements-dev.txt")


def pip_install(python: str, target: Path, *requirements: str, compile_: bool) -> None:
    command = [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--root-user-action=ignore",
        "--target",
        str(target),
    ]
    command += [] if compile_ else ["--no-compile"]
    subprocess.run([*command, *requirements], check=True)


def strip_bytecode(directory: Path) -> None:
    for cache in list(directory.rglob("__pycache__")):
        shutil.rmtree(cache)


def lambda_env(paths: list[Path]) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(str(p) for p in paths),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "AWS_REGION": "eu-west-3",
        "AWS_DEFAULT_REGION": "eu-west-3",
        "AWS_LAMBDA_FUNCTION_NAME": "bench-monitor",
        "POWERTOOLS_SERVICE_NAME": "bench",
        "POWERTOOLS_METRICS_NAMESPACE": "BackupMonitor",
    }


def time_import(python: str, paths: list[Path]) -> float:
    """Milliseconds to `import app` in a fresh interpreter that cannot write bytecode."""
    done = subprocess.run(
        [python, "-c", PROBE],
        env=lambda_env(paths),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True, help="a python3.13 (the Lambda runtime's version)")
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    args = parser.parse_args()
    function, layer = args.build_dir / "BackupMonitorFunction", args.build_dir / "DependenciesLayer" / "python"
    if not (function / "app.py").is_file() or not layer.is_dir():
        raise SystemExit(f"no sam build output in {args.build_dir}: run `make template` first")
    if platform.machine() not in ("aarch64", "arm64"):
        # The layer is built for the Lambda's arm64 (cryptography's compiled core): it does not import here.
        print(f"Cold start: skipped on {platform.machine()}, the layer's compiled packages are built for arm64.")
        return

    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        work = Path(tmp)
        runtime = work / "runtime"  # the runtime's boto3/botocore, compiled as the runtime ships them
        pip_install(args.python, runtime, pinned("boto3"), compile_=True)
        shipped = [work / "shipped" / "function", work / "shipped" / "layer"]
        shutil.copytree(function, shipped[0])
        shutil.copytree(layer, shipped[1])
        plain = [work / "plain" / "function", work / "plain" / "layer"]
        shutil.copytree(function, plain[0])
        shutil.copytree(layer, plain[1])
        for directory in plain:
            strip_bytecode(directory)
        shadow = work / "shadow"  # aws-xray-sdk's own botocore, uncompiled, first on the path as in the layer
        boto = pinned("boto3")
        botocore = subprocess.run(
            [args.python, "-c", "import importlib.metadata as m; print(m.version('botocore'))"],
            env={"PYTHONPATH": str(runtime)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        pip_install(args.python, shadow, f"botocore=={botocore}", "--no-deps", compile_=False)

        cases = [
            ("previous build: no bytecode, botocore in the layer", [plain[0], plain[1], shadow, runtime]),
            ("no bytecode (runtime's botocore)", [plain[0], plain[1], runtime]),
            ("this build: unchecked-hash bytecode", [shipped[0], shipped[1], runtime]),
        ]
        print(f"Cold `import app` ({RUNS} fresh interpreters each, no writable bytecode cache, {boto}):\n")
        print("| build | median (ms) | min (ms) | max (ms) |")
        print("|---|---|---|---|")
        timings: dict[str, list[float]] = {label: [] for label, _ in cases}
        for _ in range(RUNS):  # round robin: a busy moment slows every case alike
            for label, paths in cases:
                timings[label].append(time_import(args.python, paths))
        for label, _ in cases:
            runs = timings[label]
            print(f"| {label} | {statistics.median(runs):.0f} | {min(runs):.0f} | {max(runs):.0f} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
