"""template.yaml as data: YAML with CloudFormation's short tags, SAM's translation, and a small evaluator of the
intrinsic functions the template's Rules, Conditions and environment use (for given parameter values)."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
PSEUDO = {
    "AWS::StackName": "bm-test",
    "AWS::Region": "eu-west-3",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
}


class _Loader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref x` into {"Ref": "x"} and `!Sub s` into {"Fn::Sub": s}."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Loader.add_multi_constructor("!", _tag)


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    with path.open() as handle:
        template: dict[str, Any] = yaml.load(handle, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    return template


def translate(template: dict[str, Any]) -> dict[str, Any]:
    """SAM's own translation (aws-sam-translator, offline), code locations replaced by S3 placeholders."""
    from samtranslator.translator.transform import transform

    source = copy.deepcopy(template)
    for resource in source["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in properties:
                properties[key] = f"s3://bucket/{key}"

    class _NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    saved = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = PSEUDO["AWS::Region"]
    try:
        translated: dict[str, Any] = transform(source, {}, _NoManagedPolicies())
    finally:
        if saved is None:
            os.environ.pop("AWS_DEFAULT_REGION", None)
        else:
            os.environ["AWS_DEFAULT_REGION"] = saved
    return translated


class Evaluator:
    """Evaluates Ref, Fn::Sub, Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Fn::FindInMap, Fn::Select,
    Fn::Split, Fn::Join and Condition for one set of parameter values (the template's defaults, overridden by
    `overrides`)."""

    def __init__(self, template: dict[str, Any], **overrides: str) -> None:
        self.template = template
        self.params = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
        unknown = set(overrides) - set(self.params)
        assert not unknown, f"not parameters of the template: {unknown}"
        self.params.update(overrides)
        self.params.update(PSEUDO)

    def condition(self, name: str) -> bool:
        return bool(self.value(self.template["Conditions"][name]))

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(item) for item in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {k: v for k, v in ((k, self.value(v)) for k, v in node.items()) if v is not _NO_VALUE}
        ((key, arg),) = node.items()
        if key == "Ref":
            return _NO_VALUE if arg == "AWS::NoValue" else self.params.get(arg, f"<{arg}>")
        if key == "Condition":
            return self.condition(arg)
        if key == "Fn::Equals":
            left, right = (self.value(a) for a in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.value(arg[0])
        if key == "Fn::And":
            return all(self.value(a) for a in arg)
        if key == "Fn::Or":
            return any(self.value(a) for a in arg)
        if key == "Fn::If":
            name, yes, no = arg
            return self.value(yes if self.condition(name) else no)
        if key == "Fn::FindInMap":
            mapping, top, second = (self.value(a) for a in arg)
            return self.template["Mappings"][mapping][str(top)][second]
        if key == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            names = {**self.params, **{k: self.value(v) for k, v in variables.items()}}
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(names.get(m.group(1), f"<{m.group(1)}>")), text)
        if key == "Fn::Select":
            index, items = (self.value(a) for a in arg)
            return items[int(index)]  # out of range: an IndexError, as CloudFormation fails the stack
        if key == "Fn::Split":
            delimiter, text = arg
            assert isinstance(delimiter, str), "Fn::Split's delimiter is a literal"
            return str(self.value(text)).split(delimiter)
        if key == "Fn::Join":
            delimiter, items = arg
            assert isinstance(delimiter, str), "Fn::Join's delimiter is a literal"
            return delimiter.join(str(v) for v in self.value(items))
        if key == "Fn::GetAtt":
            return f"<{'.'.join(arg)}>"
        return {key: self.value(arg)}

    def rule_failures(self) -> list[str]:
        """The AssertDescription of every failing assertion of the template's Rules."""
        failures = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.value(rule["RuleCondition"]):
                continue
            failures += [a["AssertDescription"] for a in rule["Assertions"] if not self.value(a["Assert"])]
        return failures


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


_NO_VALUE = _NoValue()
