"""Provisioners of the template's serverless layers and functions: each function becomes a
worker spec (`infra.local.worker_spec`), its events the worker's event sources
(`infra.local.provision_events`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from infra.local.provision_context import (
    Attributes,
    ProvisionError,
    StackContext,
    check_properties,
    optional_str,
)
from infra.local.provision_events import event_sources
from infra.local.template import (
    Resource,
)

log = logging.getLogger("infra.local.provision")


_LAYER_IGNORED: Final = frozenset(
    {
        "Description",
        "CompatibleRuntimes",
        "CompatibleArchitectures",
        "LicenseInfo",
        "RetentionPolicy",
        "PublishLambdaVersion",
    }
)


def _local_dir(context: StackContext, uri: Any, what: str) -> Path:
    if not isinstance(uri, str):
        raise ProvisionError(f"{what} must be a local directory, got {uri!r}")
    path = (context.template.root / uri).resolve()
    if not path.is_dir():
        raise ProvisionError(f"{what} {uri!r}: no such directory {path}")
    return path


def provision_layer(context: StackContext, resource: Resource) -> Attributes:
    check_properties(resource, {"LayerName", "ContentUri"}, _LAYER_IGNORED)
    properties = context.resolver.resolve(resource.properties)
    name = properties.get("LayerName") or resource.logical_id
    path = _local_dir(context, properties.get("ContentUri"), "ContentUri")
    arn = context.arn("lambda", f"layer:{name}:1")
    context.layer_paths[arn] = str(path)
    log.info("layer %s from %s", name, path)
    return {"Ref": arn, "Arn": arn}


_FUNCTION_APPLIED: Final = frozenset(
    {
        "FunctionName",
        "CodeUri",
        "Handler",
        "Runtime",
        "Timeout",
        "MemorySize",
        "Layers",
        "Environment",
        "Events",
    }
)
# IAM, observability, deployment and capacity settings: no local behaviour to emulate.
_FUNCTION_IGNORED: Final = frozenset(
    {
        "Description",
        "Policies",
        "Role",
        "RolePath",
        "PermissionsBoundary",
        "AssumeRolePolicyDocument",
        "Tracing",
        "Architectures",
        "ReservedConcurrentExecutions",
        "ProvisionedConcurrencyConfig",
        "AutoPublishAlias",
        "AutoPublishCodeSha256",
        "DeploymentPreference",
        "VersionDescription",
        "Tags",
        "PropagateTags",
        "KmsKeyArn",
        "VpcConfig",
        "LoggingConfig",
        "RuntimeManagementConfig",
        "EphemeralStorage",
        "CodeSigningConfigArn",
        "SnapStart",
        "RecursiveLoop",
    }
)


def provision_function(context: StackContext, resource: Resource) -> Attributes:
    check_properties(resource, _FUNCTION_APPLIED, _FUNCTION_IGNORED)
    properties = resource.properties
    resolver = context.resolver
    name = optional_str(context, properties, "FunctionName") or context.default_name(resource)
    runtime = optional_str(context, properties, "Runtime") or ""
    if not runtime.startswith("python"):
        raise ProvisionError(f"Runtime {runtime!r} cannot run locally (python only)")
    arn = context.arn("lambda", f"function:{name}")
    sqs_sources, schedule_sources, stream_sources = event_sources(
        context, properties.get("Events") or {}
    )
    override = context.schedule_seconds.get(resource.logical_id)
    if override is not None:
        log.info("function %s: schedules every %ss (local override)", name, override)
        schedule_sources = [{**source, "rate_seconds": override} for source in schedule_sources]
    context.result.workers[resource.logical_id] = {
        "logical_id": resource.logical_id,
        "function_name": name,
        "code_uri": str(
            _local_dir(context, resolver.resolve(properties.get("CodeUri")), "CodeUri")
        ),
        "layer_paths": _layer_paths(context, resolver.resolve(properties.get("Layers", []))),
        "handler": _handler(context, properties),
        "environment": _environment(context, properties.get("Environment") or {}),
        "timeout": int(resolver.resolve_str(properties.get("Timeout", 3), "Timeout")),
        "memory_size": int(resolver.resolve_str(properties.get("MemorySize", 128), "MemorySize")),
        "region": context.region,
        "aws_endpoint_url": context.endpoint_url,
        "sqs_sources": sqs_sources,
        "schedule_sources": schedule_sources,
        "stream_sources": stream_sources,
        "invoke_host": "127.0.0.1",
        "invoke_port": 0,
    }
    context.function_arns[arn] = resource.logical_id
    log.info("function %s -> worker spec", name)
    return {"Ref": name, "Arn": arn}


def _handler(context: StackContext, properties: Mapping[str, Any]) -> str:
    handler = optional_str(context, properties, "Handler")
    if not handler or "." not in handler:
        raise ProvisionError(f"Handler must be 'module.function', got {handler!r}")
    return handler


def _layer_paths(context: StackContext, layers: Any) -> list[str]:
    paths = []
    for arn in layers:
        if arn not in context.layer_paths:
            raise ProvisionError(f"layer {arn} is not an AWS::Serverless::LayerVersion here")
        paths.append(context.layer_paths[arn])
    return paths


def _environment(context: StackContext, environment: Mapping[str, Any]) -> dict[str, str]:
    unknown = sorted(set(environment) - {"Variables"})
    if unknown:
        raise ProvisionError(f"Environment property {unknown} is not supported locally")
    variables = environment.get("Variables") or {}
    return {
        key: context.resolver.resolve_str(value, f"environment variable {key}")
        for key, value in variables.items()
    }
