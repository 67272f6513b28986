"""The stack's moto servers: the main one and the dedicated ones (`infra.local.endpoints`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from infra.local.children import READY_TIMEOUT_S, Child, LocalStackError, Spawner, free_port
from infra.local.endpoints import DEDICATED_SERVERS, endpoint_environment, service_endpoints

log = logging.getLogger("infra.local.stack")


def start_moto_servers(spawner: Spawner) -> dict[str, Child]:
    """Start every moto server at once: the dedicated ones on ports chosen here, which the
    main one (named `moto`, as before there were several) forwards their services to."""
    ports = {name: free_port() for name in DEDICATED_SERVERS}
    servers = {
        name: spawner.spawn_python(
            f"moto-{name}", "infra.local.motoserver", "--host", "127.0.0.1", "--port", str(port)
        )
        for name, port in ports.items()
    }
    forwards = [f"--forward={name}=http://127.0.0.1:{port}" for name, port in ports.items()]
    main = spawner.spawn_python(
        "moto", "infra.local.motoserver", "--host", "127.0.0.1", "--port", "0", *forwards
    )
    return {"main": main, **servers}


def wait_moto_servers(spawner: Spawner, servers: Mapping[str, Child]) -> tuple[str, dict[str, str]]:
    """Wait for every moto server and point the children started from now on at the dedicated
    ones; return the main server's URL and the per-service endpoints."""
    urls = {name: moto_url(child) for name, child in servers.items()}
    endpoints = service_endpoints(urls)
    spawner.extend_environment(endpoint_environment(endpoints))
    for name, url in urls.items():
        log.info("moto server (%s) on %s", name, url)
    return urls["main"], endpoints


def moto_url(moto: Child) -> str:
    url = moto.wait_ready(READY_TIMEOUT_S)
    if not url.startswith("http://"):
        raise LocalStackError(f"{moto.name} announced {url!r} instead of its URL")
    return url
