"""The locks (`make lock`): every package pinned with hashes, the runtime's free of test tools, the three
agreeing on the versions they share; and every third-party module the package imports declared."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "functions/backup_monitor"
RUNTIME_LOCK = ROOT / "requirements.txt"  # what `make demo` installs
DEV_LOCK = ROOT / "requirements-dev.txt"
LAYER_LOCKS = (ROOT / "layers/requirements.txt", ROOT / "layers/requirements-no-deps.txt")
TOOL_LOCKS = (ROOT / "tools/requirements-sam.txt", ROOT / "tools/requirements-checkov.txt")  # their own venvs
TEST_TOOLS = {"pytest", "ruff", "mypy", "moto", "cfn-lint", "hypothesis", "pip-tools"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[A-Za-z0-9,._-]+\])?==([^\s;\\]+)")  # name[extras]==version
HASH = re.compile(r"^\s+--hash=sha256:[0-9a-f]{64}")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path) -> dict[str, tuple[str, int]]:
    """Package -> (version, number of hashes); a requirement line that is not an exact pin fails the test."""
    found: dict[str, tuple[str, int]] = {}
    current = ""
    for line in lock.read_text().splitlines():
        if HASH.match(line):
            version, count = found[current]
            found[current] = (version, count + 1)
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{lock.name}: not an exact pin: {line!r}"
        current = canonical(match.group(1))
        found[current] = (match.group(2), 0)
    return found


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return canonical(match.group(0))


@pytest.mark.parametrize(
    "lock", [RUNTIME_LOCK, DEV_LOCK, *LAYER_LOCKS, *TOOL_LOCKS], ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_package_of_a_lock_is_pinned_with_hashes(lock: Path) -> None:
    found = pins(lock)
    assert found
    assert {name for name, (_, hashes) in found.items() if hashes == 0} == set()


def test_the_runtime_lock_has_no_test_tool() -> None:
    """`make demo` installs this file: a user running the demo gets the runtime, not the toolchain."""
    assert set(pins(RUNTIME_LOCK)) & TEST_TOOLS == set()
    assert {"boto3", "botocore", "aws-lambda-powertools"} & set(pins(RUNTIME_LOCK)) == set()


def test_the_runtime_lock_holds_the_declared_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {requirement_name(r) for r in project["dependencies"]}
    assert declared <= set(pins(RUNTIME_LOCK))
    aws = {requirement_name(r) for r in project["optional-dependencies"]["aws"]}
    assert declared | aws | TEST_TOOLS <= set(pins(DEV_LOCK))


def test_the_locks_agree_on_the_versions_they_share() -> None:
    """The tests run the versions users install, and the Lambda's layer the same ones."""
    runtime = {name: version for name, (version, _) in pins(RUNTIME_LOCK).items()}
    dev = {name: version for name, (version, _) in pins(DEV_LOCK).items()}
    layer = {name: version for lock in LAYER_LOCKS for name, (version, _) in pins(lock).items()}
    assert {n: (v, dev.get(n)) for n, v in runtime.items() if dev.get(n) != v} == {}
    assert {n: (v, layer[n]) for n, v in runtime.items() if n in layer and layer[n] != v} == {}
    assert {n: (v, dev.get(n)) for n, v in layer.items() if dev.get(n) != v} == {}


def test_the_layer_leaves_boto_to_the_lambda_runtime() -> None:
    layer = {name for lock in LAYER_LOCKS for name in pins(lock)}
    assert layer & {"boto3", "botocore", "s3transfer"} == set()


def imported_modules(path: Path) -> set[str]:
    """Top-level modules a file imports at run time (not those only under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def test_every_imported_third_party_module_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {requirement_name(r) for r in project["dependencies"]}
    declared |= {requirement_name(r) for r in project["optional-dependencies"]["aws"]}
    modules = set().union(*(imported_modules(p) for p in PACKAGE.rglob("*.py")))
    third_party = modules - set(sys.stdlib_module_names) - {"backup_monitor", "app", "__future__"}
    assert "urllib3" in third_party  # the check sees what it is meant to
    distributions = packages_distributions()
    undeclared = {
        module: distributions.get(module)
        for module in third_party
        if not {canonical(d) for d in distributions.get(module, [module])} & declared
    }
    assert undeclared == {}
