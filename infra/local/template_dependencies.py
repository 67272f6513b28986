"""The order in which a template's resources can be created: each after what it references
(Ref, Fn::GetAtt, Fn::Sub) or names in DependsOn."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from infra.local.cfn_yaml import TemplateError
from infra.local.template import SUB_VARIABLE, Resource, Template, is_intrinsic


def references(value: Any) -> Iterator[str]:
    """Names referenced by Ref, Fn::GetAtt and Fn::Sub inside `value` (may include params)."""
    if is_intrinsic(value):
        name, argument = next(iter(value.items()))
        yield from _intrinsic_references(name, argument)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def _intrinsic_references(name: str, argument: Any) -> Iterator[str]:
    if name == "Ref" and isinstance(argument, str):
        yield argument
    elif name == "Fn::GetAtt" and isinstance(argument, list) and argument:
        yield str(argument[0])
        yield from references(argument[1:])
    elif name == "Fn::Sub" and isinstance(argument, str):
        yield from _sub_references(argument, set())
    elif name == "Fn::Sub" and isinstance(argument, list) and len(argument) == 2:
        text, variables = argument
        local_names = set(variables) if isinstance(variables, dict) else set()
        yield from _sub_references(text, local_names)
        yield from references(variables)
    else:
        yield from references(argument)


def _sub_references(text: Any, local_names: set[str]) -> Iterator[str]:
    if not isinstance(text, str):
        return
    for match in SUB_VARIABLE.finditer(text):
        name = match.group(1)
        if name.startswith("!") or name in local_names:
            continue
        yield name if name.startswith("AWS::") else name.partition(".")[0]


def dependency_order(template: Template) -> list[Resource]:
    """Resources ordered so that each comes after everything it references or DependsOn.

    Ties keep template order, so the result is deterministic. A cycle raises TemplateError.
    """
    edges = {lid: _resource_dependencies(template, res) for lid, res in template.resources.items()}
    ordered: list[Resource] = []
    done: set[str] = set()
    pending = list(template.resources)
    while pending:
        ready = [lid for lid in pending if edges[lid] <= done]
        if not ready:
            raise TemplateError(f"circular dependency between resources {sorted(pending)}")
        for lid in ready:
            ordered.append(template.resources[lid])
            done.add(lid)
        pending = [lid for lid in pending if lid not in done]
    return ordered


def _resource_dependencies(template: Template, resource: Resource) -> set[str]:
    referenced = set(references(resource.properties)) | set(resource.depends_on)
    missing = sorted(name for name in resource.depends_on if name not in template.resources)
    if missing:
        raise TemplateError(f"resource {resource.logical_id}: DependsOn unknown {missing}")
    return {name for name in referenced if name in template.resources} - {resource.logical_id}
