"""Cold start of the Lambda handler, as a fresh Lambda container does it: a new interpreter, no writable
bytecode cache (PYTHONDONTWRITEBYTECODE), the Lambda's environment (LAMBDA_TASK_ROOT, _HANDLER,
AWS_LAMBDA_FUNCTION_NAME...: Powertools' Tracer imports the X-Ray SDK only there), the built function and layer
from `sam build`, boto3 as the runtime provides it. Times `import app`, then building the Slack notifier the
first invocation builds (an incoming webhook, or a bot token), and compares the build as shipped
(unchecked-hash .pyc) with the same files without bytecode, and with the botocore that aws-xray-sdk used to
pull into the layer (the previous build).

The layer is built for the Lambda's arm64: on another machine its compiled packages (cryptography, isal) do not
load, so the layer is installed for this machine from the same pins (layers/requirements*.txt, wheels only)
and compiled the same way; the output says which layer was used.

    python bench/cold_start.py --python /path/to/python3.13 --build-dir .aws-sam/build
"""

from __future__ import annotations

import argparse
import json
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
LAMBDA_ARCHS = ("aarch64", "arm64")
# `import app`, then the notifier the first invocation builds (wiring.build_notifier, from the environment)
PROBE = """
import json, os, sys, time
t0 = time.perf_counter()
import app
t1 = time.perf_counter()
from backup_monitor.config import Settings
from backup_monitor.wiring import build_notifier
build_notifier(Settings.from_env(os.environ))
t2 = time.perf_counter()
print(json.dumps({"import": (t1 - t0) * 1000, "notifier": (t2 - t1) * 1000,
                  "slack_sdk_web": "slack_sdk.web" in sys.modules, "xray": "aws_xray_sdk" in sys.modules}))
"""
# The Slack destinations compared: an incoming webhook, or a bot token and channel (placeholders: nothing is sent)
SLACK = {
    "webhook": {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0BENCH/B0BENCH/benchbenchbench"},
    "bot": {"SLACK_BOT_TOKEN": "xoxb-bench-placeholder", "SLACK_CHANNEL": "#bench"},
}
COMPILEALL = ["-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]


def pinned(name: str) -> str:
    for line in (ROOT / "requirements-dev.txt").read_text().splitlines():
        if line.startswith(f"{name}=="):
            return line.split()[0]  # the lock's lines go on with ` \` and the hashes
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


def host_layer(python: str, target: Path) -> None:
    """The layer's packages for this machine: the same pins as `make build-DependenciesLayer`, wheels only,
    compiled to unchecked-hash bytecode as the build does."""
    layers = ROOT / "layers"
    base = ["--only-binary=:all:", "--no-compile"]
    pip_install(python, target, *base, "-r", str(layers / "requirements.txt"), compile_=False)
    pip_install(python, target, *base, "--no-deps", "-r", str(layers / "requirements-no-deps.txt"), compile_=False)
    subprocess.run([python, *COMPILEALL, str(target)], check=True)


def strip_bytecode(directory: Path) -> None:
    for cache in list(directory.rglob("__pycache__")):
        shutil.rmtree(cache)


def lambda_env(paths: list[Path], slack: dict[str, str]) -> dict[str, str]:
    """What the Lambda runtime sets (LAMBDA_TASK_ROOT is the function's directory, the first of `paths`), and
    the template's environment (template.yaml's Globals), with no credentials: nothing is called."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": os.pathsep.join(str(p) for p in paths),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "LAMBDA_TASK_ROOT": str(paths[0]),
        "LAMBDA_RUNTIME_DIR": str(paths[-1]),
        "_HANDLER": "app.handler",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": "bench-monitor",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/bench-monitor",
        "AWS_REGION": "eu-west-3",
        "AWS_DEFAULT_REGION": "eu-west-3",
        "POWERTOOLS_SERVICE_NAME": "bench",
        "POWERTOOLS_METRICS_NAMESPACE": "BackupMonitor",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_LOGGER_LOG_EVENT": "false",
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        "SCALINGO_API_TOKEN_PARAMETER": "/bench/scalingo-api-token",
        "STATE_TABLE": "bench-state",
        **slack,
    }


def time_start(python: str, paths: list[Path], slack: dict[str, str]) -> dict[str, float]:
    """Milliseconds to `import app`, then to build the notifier, in a fresh interpreter without bytecode cache."""
    done = subprocess.run(
        [python, "-c", PROBE],
        env=lambda_env(paths, slack),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"the probe failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["xray"]:
        raise SystemExit("the X-Ray SDK was not imported: the probe did not take the Lambda's path")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", required=True, help="a python3.13 (the Lambda runtime's version)")
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--runs", type=int, default=RUNS, help=f"fresh interpreters per case (default {RUNS})")
    args = parser.parse_args()
    function, layer = args.build_dir / "BackupMonitorFunction", args.build_dir / "DependenciesLayer" / "python"
    if not (function / "app.py").is_file() or not layer.is_dir():
        raise SystemExit(f"no sam build output in {args.build_dir}: run `make template` first")

    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        work = Path(tmp)
        machine = platform.machine()
        if machine in LAMBDA_ARCHS:
            which = f"the sam build's layer ({layer}, arm64, as deployed)"
        else:  # the build's layer holds arm64 binaries: the same pins for this machine instead
            layer = work / "host-layer"
            host_layer(args.python, layer)
            which = (
                f"layers/requirements*.txt installed for this {machine} machine (same pins, wheels, unchecked-hash "
                f"bytecode); the sam build's layer is arm64's"
            )
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

        builds = [
            ("previous build: no bytecode, botocore in the layer", [plain[0], plain[1], shadow, runtime]),
            ("no bytecode (runtime's botocore)", [plain[0], plain[1], runtime]),
            ("this build: unchecked-hash bytecode", [shipped[0], shipped[1], runtime]),
        ]
        cases = [(f"{label}, {slack}", paths, SLACK[slack]) for label, paths in builds for slack in SLACK]
        print(f"Layer: {which}.")
        print(f"Python: {args.python} on {machine}; {boto} as the runtime's.\n")
        print(
            f"Cold start ({args.runs} fresh interpreters each, Lambda environment, no writable bytecode cache): "
            "`import app`, then building the Slack notifier (webhook: no slack-sdk; bot: slack_sdk.web):\n"
        )
        print("| build, Slack | import app, median (ms) | min | max | + notifier, median (ms) | total, median (ms) |")
        print("|---|---|---|---|---|---|")
        timings: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in cases}
        for _ in range(args.runs):  # round robin: a busy moment slows every case alike
            for label, paths, slack_env in cases:
                timings[label].append(time_start(args.python, paths, slack_env))
        for label, _, _ in cases:
            imports = [r["import"] for r in timings[label]]
            notifier = [r["notifier"] for r in timings[label]]
            total = [r["import"] + r["notifier"] for r in timings[label]]
            print(
                f"| {label} | {statistics.median(imports):.0f} | {min(imports):.0f} | {max(imports):.0f} "
                f"| {statistics.median(notifier):.0f} | {statistics.median(total):.0f} |"
            )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
