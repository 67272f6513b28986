"""The local stack's HTTP API as one seeded user, for e2e modules that call it directly."""

from __future__ import annotations

import json
from typing import Any
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import boto3

from infra.local.provision_api import LOCAL_PASSWORD
from tests.e2e.conftest import Stack


class ApiUser:
    """The stack's HTTP API as one seeded user (an ID token from the moto user pool)."""

    def __init__(self, stack: Stack, user: str) -> None:
        state = stack.state
        cognito = boto3.client(
            "cognito-idp",
            endpoint_url=state["aws_endpoint_url"],
            region_name=state["region"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        answer = cognito.initiate_auth(
            ClientId=state["resources"]["ServiceUserPoolClient"],
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": user, "PASSWORD": LOCAL_PASSWORD},
        )
        self.token = str(answer["AuthenticationResult"]["IdToken"])
        self.url = str(state["api_url"])

    def call(
        self, method: str, path: str, body: Any = None, key: str | None = None
    ) -> tuple[int, Any]:
        """(status, decoded body); `key` is sent as the Idempotency-Key header."""
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        data = json.dumps(body).encode() if body is not None else None
        request = Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str) -> Any:
        status, body = self.call("GET", path)
        assert status == 200, (path, status, body)
        return body

    def raise_ticket(self, key: str | None = None, **body: Any) -> tuple[int, Any]:
        return self.call("POST", "/tickets", body, key=key)
