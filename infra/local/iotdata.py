"""Local stand-in for the AWS IoT data plane's Publish API, forwarding to Mosquitto.

Functions publish with boto3's ``iot-data`` client (``publish(topic=..., qos=1, payload=...)``)
in AWS and locally alike; locally their ``IOT_DATA_ENDPOINT`` points here. It serves
``POST /topics/{topic}?qos=0|1[&retain=true|false]`` (the REST call botocore makes; the topic is
URL-encoded) and answers 200 only once the broker has acknowledged a QoS 1 message, so a
successful Publish means the broker has it, as in AWS IoT Core. Signatures are not checked.
``GET /health`` answers whether the broker connection is up.

Retained publishes are refused (403): the functions' IAM policies grant no ``iot:RetainPublish``
and the local broker has retained messages switched off. A QoS 1 publish the broker refuses
(its ACL allows this stand-in only the topics the functions' IAM policies allow) is a 403 too,
as AWS answers a Publish that IAM denies; the broker's MQTT 5 PUBACK says so.

Process: ``python -m infra.local.iotdata --mqtt-url mqtts://HOST:PORT --ca-file F --cert-file F
--key-file F`` (the certificate of the ``aftercare-local-iot-data`` identity); prints
``READY {"url": "http://127.0.0.1:PORT"}`` once connected; SIGTERM/SIGINT stop it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from devices.config import parse_broker_url
from infra.local.process import configure_logging
from infra.local.serving import JsonRequestHandler, LocalHttpServer, serve_until_stopped

logger = logging.getLogger("infra.local.iotdata")

PUBACK_TIMEOUT_S: Final = 10.0
CONNECT_TIMEOUT_S: Final = 15.0
MAX_PAYLOAD_BYTES: Final = 128 * 1024  # AWS IoT Core's message size limit


class PublishRefused(Exception):
    """The broker refused the message (MQTT 5 PUBACK reason code, e.g. Not authorized)."""


class Forwarder:
    """One MQTT connection that publishes on behalf of every HTTP request."""

    def __init__(
        self, mqtt_url: str, client_id: str, tls_files: tuple[Path, Path, Path] | None = None
    ) -> None:
        address = parse_broker_url(mqtt_url)
        self._connected = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        self._refusals: dict[int, str] = {}
        if address.tls:
            ca_file, cert_file, key_file = tls_files or (None, None, None)
            self.client.tls_set(
                ca_certs=str(ca_file) if ca_file else None,
                certfile=str(cert_file) if cert_file else None,
                keyfile=str(key_file) if key_file else None,
            )
        self.client.max_inflight_messages_set(200)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.reconnect_delay_set(1, 5)
        self.client.connect_async(address.host, address.port, keepalive=30, clean_start=True)

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        logger.info("connected to the broker")
        self._connected.set()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, *_: Any
    ) -> None:
        if reason.is_failure:
            self._refusals[mid] = str(reason)

    def _on_disconnect(self, client: mqtt.Client, *args: Any) -> None:
        logger.warning("disconnected from the broker; reconnecting")
        self._connected.clear()

    def start(self, timeout: float) -> bool:
        self.client.loop_start()
        return self._connected.wait(timeout)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> str | None:
        """Publish and wait for the broker; returns why it failed, or None.

        Raises ``PublishRefused`` when the broker answered, but with a refusal.
        """
        if not self.connected:
            return "not connected to the broker"
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return mqtt.error_string(info.rc)
        try:
            info.wait_for_publish(PUBACK_TIMEOUT_S)
        except (RuntimeError, ValueError) as exc:
            return str(exc)
        refusal = self._refusals.pop(info.mid, None)
        if refusal is not None:
            raise PublishRefused(f"the broker refused {topic}: {refusal}")
        return None if info.is_published() else "the broker did not acknowledge in time"

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def parse_publish(path: str) -> tuple[str, int, bool]:
    """(topic, qos, retain) of a Publish request path, or ValueError saying what is wrong."""
    parts = urlsplit(path)
    if not parts.path.startswith("/topics/") or len(parts.path) <= len("/topics/"):
        raise ValueError(f"no such operation: {parts.path}")
    topic = unquote(parts.path.removeprefix("/topics/"))
    if "+" in topic or "#" in topic:
        raise ValueError(f"cannot publish to a topic filter: {topic}")
    query = parse_qs(parts.query)
    qos = int(query.get("qos", ["0"])[0])
    if qos not in (0, 1):
        raise ValueError(f"qos must be 0 or 1, got {qos}")
    retain = query.get("retain", ["false"])[0].lower() == "true"
    return topic, qos, retain


class _Server(LocalHttpServer):
    def __init__(self, address: tuple[str, int], forwarder: Forwarder) -> None:
        super().__init__(address, _Handler)
        self.forwarder = forwarder


class _Handler(JsonRequestHandler):
    server_version = "aftercare-local-iot-data"
    logger = logger

    @property
    def _forwarder(self) -> Forwarder:
        return cast(_Server, self.server).forwarder

    def do_GET(self) -> None:
        if urlsplit(self.path).path == "/health":
            ok = self._forwarder.connected
            status = HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE
            self.send_json(status, {"connected": ok})
        else:
            self._error(HTTPStatus.NOT_FOUND, "ResourceNotFoundException", "no such route")

    def do_POST(self) -> None:
        payload = self.read_body()
        try:
            topic, qos, retain = parse_publish(self.path)
        except ValueError as exc:
            self._error(HTTPStatus.BAD_REQUEST, "InvalidRequestException", str(exc))
            return
        if retain:
            self._error(
                HTTPStatus.FORBIDDEN,
                "ForbiddenException",
                "retained publishes are not allowed (no iot:RetainPublish)",
            )
            return
        if len(payload) > MAX_PAYLOAD_BYTES:
            self._error(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "RequestEntityTooLargeException", "payload"
            )
            return
        try:
            problem = self._forwarder.publish(topic, payload, qos, retain)
        except PublishRefused as exc:
            logger.warning("%s", exc)
            self._error(HTTPStatus.FORBIDDEN, "ForbiddenException", str(exc))
            return
        if problem is not None:
            logger.error("publish to %s failed: %s", topic, problem)
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, "ServiceUnavailableException", problem)
            return
        logger.info("published %d bytes to %s (qos %d)", len(payload), topic, qos)
        self.send_json(HTTPStatus.OK, {})

    def _error(self, status: HTTPStatus, kind: str, message: str) -> None:
        self.send_json(status, {"message": message}, {"x-amzn-ErrorType": kind})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local IoT data-plane Publish -> MQTT broker")
    parser.add_argument("--mqtt-url", required=True)
    parser.add_argument("--ca-file", type=Path, help="local CA (mqtts:// only)")
    parser.add_argument("--cert-file", type=Path, help="client certificate (mqtts:// only)")
    parser.add_argument("--key-file", type=Path, help="client certificate's key (mqtts:// only)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    configure_logging("iot-data")
    tls_files = (args.ca_file, args.cert_file, args.key_file) if args.cert_file else None
    forwarder = Forwarder(args.mqtt_url, f"aftercare-local-iot-data-{os.getpid()}", tls_files)
    if not forwarder.start(CONNECT_TIMEOUT_S):
        logger.error("cannot connect to %s", args.mqtt_url)
        return 1
    server = _Server((args.host, args.port), forwarder)
    serve_until_stopped(server, "iot-data")
    forwarder.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
