"""Load a SAM/CloudFormation template and evaluate its intrinsic functions locally.

`load_template` reads YAML with the CloudFormation short-form tags (`infra.local.cfn_yaml`: they
become the long form, `{"Ref": ...}`, `{"Fn::GetAtt": [...]}`), applies the
SAM `Globals` section to the serverless resources exactly as SAM does, and returns a `Template`.

`Resolver` evaluates intrinsics against parameter values, pseudo parameters and the attributes
of resources that were already created (`physical`: logical id -> attribute -> value, where the
attribute `"Ref"` is what `!Ref` returns). Anything it cannot evaluate raises
`UnresolvableReference` naming the logical id and attribute, never a silent placeholder.
"""

from __future__ import annotations

import base64
import copy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from infra.local.cfn_yaml import TemplateError, load_yaml

SAM_TRANSFORM: Final = "AWS::Serverless-2016-10-31"
DEFAULT_ACCOUNT_ID: Final = "123456789012"

# Globals sections SAM knows, and the properties SAM refuses to take from Globals.
_GLOBALS_SECTIONS: Final = {
    "Function": "AWS::Serverless::Function",
    "Api": "AWS::Serverless::Api",
    "HttpApi": "AWS::Serverless::HttpApi",
    "SimpleTable": "AWS::Serverless::SimpleTable",
    "StateMachine": "AWS::Serverless::StateMachine",
    "LayerVersion": "AWS::Serverless::LayerVersion",
    "CapacityProvider": "AWS::Serverless::CapacityProvider",
}
_GLOBALS_FORBIDDEN: Final = {
    "Function": frozenset({"Role", "Policies", "FunctionName", "Events"}),
    "Api": frozenset({"StageName", "DefinitionBody"}),
    "HttpApi": frozenset({"StageName", "DefinitionBody", "DefinitionUri"}),
}

INTRINSIC_KEYS: Final = frozenset(
    {
        "Ref",
        "Condition",
        "Fn::GetAtt",
        "Fn::Sub",
        "Fn::Join",
        "Fn::Split",
        "Fn::Select",
        "Fn::If",
        "Fn::Equals",
        "Fn::Not",
        "Fn::And",
        "Fn::Or",
        "Fn::FindInMap",
        "Fn::Base64",
        "Fn::ImportValue",
        "Fn::GetAZs",
        "Fn::Cidr",
        "Fn::Transform",
        "Fn::ToJsonString",
        "Fn::Length",
    }
)

SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class UnresolvableReference(TemplateError):
    """An intrinsic function refers to something that has no local value."""


# --------------------------------------------------------------------------------------------
# Template model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    """One entry of `Resources`, with SAM Globals already applied to its properties."""

    logical_id: str
    type: str
    properties: dict[str, Any]
    depends_on: tuple[str, ...] = ()
    condition: str | None = None


@dataclass(frozen=True)
class Template:
    """A parsed template: the sections the local stack needs, in template order."""

    path: Path
    parameters: dict[str, dict[str, Any]]
    resources: dict[str, Resource]
    conditions: dict[str, Any] = field(default_factory=dict)
    mappings: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        """Directory the template's relative paths (CodeUri, ContentUri) are relative to."""
        return self.path.parent


def load_template(path: Path) -> Template:
    """Read `path`, check it is a template this loader understands and apply SAM Globals."""
    document = load_yaml(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path}: not a CloudFormation template (no Resources mapping)")
    _check_transform(document.get("Transform"))
    global_sections = _global_sections(document.get("Globals") or {})
    resources = {
        logical_id: _make_resource(logical_id, body, global_sections)
        for logical_id, body in document["Resources"].items()
    }
    return Template(
        path=path.resolve(),
        parameters=dict(document.get("Parameters") or {}),
        resources=resources,
        conditions=dict(document.get("Conditions") or {}),
        mappings=dict(document.get("Mappings") or {}),
        outputs=dict(document.get("Outputs") or {}),
    )


def _check_transform(transform: Any) -> None:
    transforms = transform if isinstance(transform, list) else [transform]
    unknown = [t for t in transforms if t not in (None, SAM_TRANSFORM)]
    if unknown:
        raise TemplateError(f"Transform {unknown} is not supported locally (only {SAM_TRANSFORM})")


def _global_sections(globals_section: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {}
    for name, properties in globals_section.items():
        if name not in _GLOBALS_SECTIONS:
            raise TemplateError(f"Globals section {name!r} is not a SAM Globals section")
        forbidden = sorted(_GLOBALS_FORBIDDEN.get(name, frozenset()) & set(properties or {}))
        if forbidden:
            raise TemplateError(f"Globals.{name} may not set {forbidden} (SAM rejects them)")
        sections[_GLOBALS_SECTIONS[name]] = dict(properties or {})
    return sections


def _make_resource(
    logical_id: str, body: Any, global_sections: Mapping[str, dict[str, Any]]
) -> Resource:
    if not isinstance(body, dict) or not isinstance(body.get("Type"), str):
        raise TemplateError(f"resource {logical_id}: missing Type")
    properties = dict(body.get("Properties") or {})
    globals_for_type = global_sections.get(body["Type"])
    if globals_for_type:
        properties = merge_globals(globals_for_type, properties)
    depends_on = body.get("DependsOn") or ()
    return Resource(
        logical_id=logical_id,
        type=body["Type"],
        properties=properties,
        depends_on=(depends_on,) if isinstance(depends_on, str) else tuple(depends_on),
        condition=body.get("Condition"),
    )


def is_intrinsic(value: Any) -> bool:
    """True for a one-key dict such as `{"Ref": ...}` or `{"Fn::Sub": ...}`."""
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in INTRINSIC_KEYS


def merge_globals(global_value: Any, local_value: Any) -> Any:
    """Merge a Globals value into a resource value the way SAM does.

    Primitives (and intrinsics) are replaced by the resource's value, maps are merged key by
    key with the resource winning, and lists are additive with the global entries first.
    """
    if _is_plain_map(global_value) and _is_plain_map(local_value):
        merged = copy.deepcopy(global_value)
        for key, value in local_value.items():
            merged[key] = merge_globals(merged[key], value) if key in merged else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return copy.deepcopy(global_value) + list(local_value)
    return local_value


def _is_plain_map(value: Any) -> bool:
    return isinstance(value, dict) and not is_intrinsic(value)


# --------------------------------------------------------------------------------------------
# Parameters and pseudo parameters
# --------------------------------------------------------------------------------------------


def pseudo_parameters(
    region: str, stack_name: str, account_id: str = DEFAULT_ACCOUNT_ID
) -> dict[str, Any]:
    """The pseudo parameters CloudFormation would provide for a stack in `region`."""
    return {
        "AWS::Region": region,
        "AWS::AccountId": account_id,
        "AWS::Partition": "aws",
        "AWS::StackName": stack_name,
        "AWS::StackId": (f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/local"),
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::NotificationARNs": [],
    }


def parameter_values(template: Template, overrides: Mapping[str, str]) -> dict[str, Any]:
    """Each parameter's value (override, else default) after CloudFormation's own checks."""
    unknown = sorted(set(overrides) - set(template.parameters))
    if unknown:
        raise TemplateError(
            f"unknown parameter(s) {unknown}; the template declares {sorted(template.parameters)}"
        )
    values: dict[str, Any] = {}
    for name, spec in template.parameters.items():
        raw = overrides.get(name, spec.get("Default"))
        if raw is None:
            raise TemplateError(f"parameter {name} has no Default and no override was given")
        values[name] = _checked_parameter(name, spec, str(raw))
    return values


LOCAL_PARAMETER_DEFAULTS: Final = {"Stage": "local"}


def local_parameters(template: Template, overrides: Mapping[str, str] | None) -> dict[str, Any]:
    """Parameter values for the local stack: `Stage=local`, then the caller's overrides."""
    defaults = {k: v for k, v in LOCAL_PARAMETER_DEFAULTS.items() if k in template.parameters}
    return parameter_values(template, {**defaults, **(overrides or {})})


def _checked_parameter(name: str, spec: Mapping[str, Any], value: str) -> Any:
    kind = spec.get("Type", "String")
    if kind == "CommaDelimitedList":
        return [item.strip() for item in value.split(",")]
    if kind == "Number":
        _check_number(name, spec, value)
    elif kind != "String":
        raise TemplateError(f"parameter {name}: type {kind} is not supported locally")
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(item) for item in allowed]:
        raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise TemplateError(f"parameter {name}={value!r} does not match {pattern!r}")
    return value


def _check_number(name: str, spec: Mapping[str, Any], value: str) -> None:
    try:
        number = float(value)
    except ValueError:
        raise TemplateError(f"parameter {name}={value!r} is not a number") from None
    low, high = spec.get("MinValue"), spec.get("MaxValue")
    if (low is not None and number < float(low)) or (high is not None and number > float(high)):
        raise TemplateError(f"parameter {name}={value} is outside [{low}, {high}]")


# --------------------------------------------------------------------------------------------
# Intrinsic function evaluation
# --------------------------------------------------------------------------------------------


class _NoValue:
    """`!Ref AWS::NoValue`: the enclosing property or list item disappears."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE: Final = _NoValue()


class Resolver:
    """Evaluates intrinsic functions against parameters, pseudo parameters and created resources.

    `physical` maps a logical id to the attributes of the resource created for it; the key
    `"Ref"` holds what `!Ref` returns. It is read at each call, so a provisioner can fill it in
    as resources are created.
    """

    def __init__(
        self,
        params: Mapping[str, Any],
        pseudo: Mapping[str, Any],
        physical: Mapping[str, Mapping[str, Any]],
        *,
        conditions: Mapping[str, Any] | None = None,
        mappings: Mapping[str, Any] | None = None,
    ) -> None:
        self._params = params
        self._pseudo = pseudo
        self._physical = physical
        self._conditions = conditions or {}
        self._mappings = mappings or {}
        self._functions: dict[str, Callable[[Any], Any]] = {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Split": self._split,
            "Fn::Select": self._select,
            "Fn::Base64": self._base64,
            "Fn::FindInMap": self._find_in_map,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::Not": self._not,
            "Fn::And": self._and,
            "Fn::Or": self._or,
            "Condition": self.condition,
        }

    def resolve(self, value: Any) -> Any:
        """Evaluate every intrinsic inside `value` (dicts and lists are walked recursively)."""
        if is_intrinsic(value):
            name, argument = next(iter(value.items()))
            function = self._functions.get(name)
            if function is None:
                raise UnresolvableReference(f"{name} is not supported locally: {value}")
            return function(argument)
        if isinstance(value, dict):
            resolved = {key: self.resolve(item) for key, item in value.items()}
            return {key: item for key, item in resolved.items() if item is not NO_VALUE}
        if isinstance(value, list):
            return [item for item in map(self.resolve, value) if item is not NO_VALUE]
        return value

    def resolve_str(self, value: Any, what: str) -> str:
        """Resolve `value` and insist the result is a scalar; return it as a string."""
        resolved = self.resolve(value)
        if isinstance(resolved, (dict, list)) or resolved is NO_VALUE:
            raise TemplateError(f"{what} must resolve to a string, got {resolved!r}")
        if isinstance(resolved, bool):
            return "true" if resolved else "false"
        return str(resolved)

    def condition(self, name: Any) -> bool:
        """Evaluate the named entry of the template's `Conditions` section."""
        if name not in self._conditions:
            raise UnresolvableReference(f"condition {name!r} is not defined in Conditions")
        return bool(self.resolve(self._conditions[name]))

    def attribute(self, logical_id: str, attribute: str) -> Any:
        """The value of `attribute` ("Ref" for !Ref) of the resource created for `logical_id`."""
        attributes = self._physical.get(logical_id)
        if attributes is None:
            raise UnresolvableReference(
                f"{_describe(logical_id, attribute)}: resource {logical_id} does not exist "
                "locally (not in the template, or not created yet)"
            )
        if attribute not in attributes:
            raise UnresolvableReference(
                f"{_describe(logical_id, attribute)}: resource {logical_id} has no attribute "
                f"{attribute!r} locally (available: {sorted(attributes)})"
            )
        return attributes[attribute]

    def _ref(self, name: Any) -> Any:
        if not isinstance(name, str):
            raise TemplateError(f"Ref needs a name, got {name!r}")
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self._params:
            return self._params[name]
        if name in self._pseudo:
            return self._pseudo[name]
        if name.startswith("AWS::"):
            raise UnresolvableReference(f"!Ref {name}: pseudo parameter not supported locally")
        return self.attribute(name, "Ref")

    def _get_att(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::GetAtt needs [LogicalId, Attribute], got {argument!r}")
        logical_id, attribute = argument
        return self.attribute(str(logical_id), self.resolve_str(attribute, "GetAtt attribute"))

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, str):
            text, variables = argument, {}
        elif isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], dict):
            text, variables = argument
        else:
            raise TemplateError(f"Fn::Sub needs a string or [string, {{vars}}], got {argument!r}")
        if not isinstance(text, str):
            raise TemplateError(f"Fn::Sub template must be a string, got {text!r}")
        local = {
            key: self.resolve_str(value, f"Fn::Sub variable {key}")
            for key, value in variables.items()
        }
        return SUB_VARIABLE.sub(lambda match: self._sub_variable(match.group(1), local), text)

    def _sub_variable(self, name: str, local: Mapping[str, str]) -> str:
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in local:
            return local[name]
        if "." in name and not name.startswith("AWS::"):
            logical_id, _, attribute = name.partition(".")
            return self.resolve_str(self.attribute(logical_id, attribute), f"${{{name}}}")
        return self.resolve_str({"Ref": name}, f"${{{name}}}")

    def _join(self, argument: Any) -> str:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::Join needs [delimiter, [values]], got {argument!r}")
        delimiter = self.resolve_str(argument[0], "Fn::Join delimiter")
        values = self.resolve(argument[1])
        if not isinstance(values, list):
            raise TemplateError(f"Fn::Join values must be a list, got {values!r}")
        return delimiter.join(self.resolve_str(item, "Fn::Join item") for item in values)

    def _split(self, argument: Any) -> list[str]:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::Split needs [delimiter, string], got {argument!r}")
        delimiter = self.resolve_str(argument[0], "Fn::Split delimiter")
        return self.resolve_str(argument[1], "Fn::Split source").split(delimiter)

    def _select(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::Select needs [index, [values]], got {argument!r}")
        index = int(self.resolve_str(argument[0], "Fn::Select index"))
        values = self.resolve(argument[1])
        if not isinstance(values, list) or not 0 <= index < len(values):
            raise TemplateError(f"Fn::Select index {index} out of range for {values!r}")
        return values[index]

    def _base64(self, argument: Any) -> str:
        text = self.resolve_str(argument, "Fn::Base64 value")
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    def _find_in_map(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3):
            raise TemplateError(f"Fn::FindInMap needs [map, key, key], got {argument!r}")
        names = [self.resolve_str(item, "Fn::FindInMap key") for item in argument]
        node: Any = self._mappings
        for name in names:
            if not isinstance(node, dict) or name not in node:
                raise UnresolvableReference(f"Fn::FindInMap {names}: no entry {name!r}")
            node = node[name]
        return node

    def _if(self, argument: Any) -> Any:
        if not (isinstance(argument, list) and len(argument) == 3):
            raise TemplateError(f"Fn::If needs [condition, then, else], got {argument!r}")
        name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(name) else when_false)

    def _equals(self, argument: Any) -> bool:
        if not (isinstance(argument, list) and len(argument) == 2):
            raise TemplateError(f"Fn::Equals needs two values, got {argument!r}")
        left, right = (self.resolve(item) for item in argument)
        return str(left) == str(right)

    def _not(self, argument: Any) -> bool:
        if not (isinstance(argument, list) and len(argument) == 1):
            raise TemplateError(f"Fn::Not needs one condition, got {argument!r}")
        return not self.resolve(argument[0])

    def _and(self, argument: Any) -> bool:
        return all(self.resolve(item) for item in _conditions_list("Fn::And", argument))

    def _or(self, argument: Any) -> bool:
        return any(self.resolve(item) for item in _conditions_list("Fn::Or", argument))


def _conditions_list(name: str, argument: Any) -> list[Any]:
    if not (isinstance(argument, list) and 2 <= len(argument) <= 10):
        raise TemplateError(f"{name} needs 2 to 10 conditions, got {argument!r}")
    return argument


def _describe(logical_id: str, attribute: str) -> str:
    return f"!Ref {logical_id}" if attribute == "Ref" else f"!GetAtt {logical_id}.{attribute}"
