"""CloudFormation YAML: the short-form tags (`!Ref`, `!GetAtt`, `!Sub`, ...) read as the long
form (`{"Ref": ...}`, `{"Fn::GetAtt": [...]}`), so the rest of the code sees one shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import yaml


class TemplateError(Exception):
    """The template cannot be run locally as written."""


# libyaml's parser when PyYAML has it: template.yaml (200 kB) parses in ~25 ms instead of
# ~350 ms, and every local stack start, provisioning and moto-table test fixture reads it.
if yaml.__with_libyaml__:

    class _CfnLoader(yaml.CSafeLoader):
        """SafeLoader (libyaml's) that understands CloudFormation's short-form intrinsic tags."""

else:  # pragma: no cover - PyYAML built without libyaml

    class _CfnLoader(yaml.SafeLoader):  # type: ignore[no-redef]
        """SafeLoader that understands CloudFormation's short-form intrinsic tags."""


def _construct_node(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    raise TemplateError(f"unsupported YAML node {node!r}")  # pragma: no cover


def _long_form(name: str) -> Callable[[yaml.SafeLoader, yaml.Node], dict[str, Any]]:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        return {name: _construct_node(loader, node)}

    return construct


def _construct_get_att(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    value = _construct_node(loader, node)
    if isinstance(value, str):
        logical_id, dot, attribute = value.partition(".")
        if not dot:
            raise TemplateError(f"!GetAtt {value!r} must be 'LogicalId.Attribute'")
        return {"Fn::GetAtt": [logical_id, attribute]}
    return {"Fn::GetAtt": value}


def _construct_str(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    # CloudFormation has no timestamp type: "2010-09-09" stays a string.
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_SHORT_TAGS: Final = {
    "Ref": "Ref",
    "Condition": "Condition",
    "Sub": "Fn::Sub",
    "Join": "Fn::Join",
    "Split": "Fn::Split",
    "Select": "Fn::Select",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
    "Not": "Fn::Not",
    "And": "Fn::And",
    "Or": "Fn::Or",
    "FindInMap": "Fn::FindInMap",
    "Base64": "Fn::Base64",
    "ImportValue": "Fn::ImportValue",
    "GetAZs": "Fn::GetAZs",
    "Cidr": "Fn::Cidr",
    "Transform": "Fn::Transform",
    "ToJsonString": "Fn::ToJsonString",
    "Length": "Fn::Length",
}
for _tag, _name in _SHORT_TAGS.items():
    _CfnLoader.add_constructor(f"!{_tag}", _long_form(_name))
_CfnLoader.add_constructor("!GetAtt", _construct_get_att)
_CfnLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_str)


def load_yaml(text: str) -> Any:
    """Parse CloudFormation YAML, turning short-form tags into long-form intrinsics."""
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader (or CSafeLoader) subclass
