"""The list of variables (backup_monitor/variables.py) is what the code reads, and docs/configuration.md is
generated from it: a variable read but not listed, listed but not read, a range the code does not enforce, or a
page edited by hand fails here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from backup_monitor import config
from backup_monitor.cli import build_parser
from backup_monitor.config import ConfigError, Settings
from backup_monitor.variables import BY_NAME, VARIABLES, Variable, for_command
from tools import config_doc

ROOT = Path(__file__).resolve().parents[2]
BASE = {"SCALINGO_API_TOKEN": "tk-us-test", "STATE_PATH": "/tmp/unused.sqlite3"}


def names_read_by_config() -> set[str]:
    """Every VARIABLE_NAME config.py passes to its reader (or reads from the environment directly)."""
    tree = ast.parse(Path(config.__file__).read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            value = node.args[0].value
            if isinstance(value, str) and re.fullmatch(r"[A-Z][A-Z0-9_]{3,}", value):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called != "ConfigError":
                    names.add(value)
    return names


def test_every_variable_the_code_reads_is_listed_and_every_listed_one_is_read() -> None:
    read = names_read_by_config() - {"XDG_STATE_HOME"}  # the platform's, for STATE_PATH's default
    assert read - set(BY_NAME) == set(), "read by config.py but missing from variables.VARIABLES"
    assert set(BY_NAME) - read == set(), "listed in variables.VARIABLES but never read"


@pytest.mark.parametrize("variable", [v for v in VARIABLES if v.number_default is not None], ids=lambda v: v.name)
def test_each_number_has_the_listed_default_and_range(variable: Variable) -> None:
    default = Settings.from_env(BASE)
    assert variable.number_default is not None
    # the default as read: find the field holding it by setting a distinct in-range value
    inside = variable.minimum if variable.minimum is not None else variable.number_default
    if variable.name == "REMIND_EVERY_HOURS":
        inside = 1.0
    Settings.from_env({**BASE, variable.name: f"{inside:g}"})
    if variable.minimum is not None:
        with pytest.raises(ConfigError) as low:
            Settings.from_env({**BASE, variable.name: f"{variable.minimum - 1:g}"})
        assert low.value.variable == variable.name
    top = variable.below if variable.below is not None else variable.maximum
    if top is not None:
        above = top if variable.below is not None else top + 1
        with pytest.raises(ConfigError) as high:
            Settings.from_env({**BASE, variable.name: f"{above:g}"})
        assert high.value.variable == variable.name
        Settings.from_env({**BASE, variable.name: f"{(variable.maximum or variable.number_default):g}"})
    assert default == Settings.from_env({**BASE, variable.name: f"{variable.number_default:g}"})


def test_the_configuration_page_is_generated_from_the_list() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == config_doc.render(), "docs/configuration.md is out of date: run `make docs`"
    for variable in VARIABLES:
        assert f"`{variable.name}`" in page


def test_the_page_names_the_stack_parameter_of_every_lambda_variable() -> None:
    page = config_doc.render()
    missing = [line.split("|")[1].strip() for line in page.splitlines() if "| **none** |" in line]
    assert missing == [], "Lambda variables without a stack parameter in template.yaml"


@pytest.mark.parametrize("command", ["check", "status"])
def test_help_lists_the_commands_variables_and_exit_statuses(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([command, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    for variable in for_command(command):
        assert f"\n  {variable.name}\n" in text
    assert "exit status:" in text
    assert re.search(r"^  2 +bad configuration", text, re.MULTILINE)
