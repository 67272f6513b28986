"""Sessions with a stack's support API, and the API client that uses them.

`aftercare login` stores the Cognito tokens of one user (mode 0600): for the local stack in
`<state dir>/session.json`, for a deployed stage (`--aws --stage S`) in
`<state dir>/sessions/<stack name>.json`. From then on `tickets list/show` and `diag` go through
that stack's API (`api_url` in the state file, or the stack's `ServiceApiUrl` output) with that
user's rights. A session from another user pool is ignored. Expired ID tokens are refreshed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode
from urllib.request import Request, urlopen

import jwt
from botocore.exceptions import ClientError

from infra.cli_core import CliError, StackOptions
from infra.target import Target, TargetError, default_state_dir, stack_name_for

SESSION_FILE = "session.json"
SESSIONS_DIR = "sessions"
REFRESH_MARGIN_S = 60
HTTP_TIMEOUT_S = 35


def _state_dir(opts: StackOptions) -> Path:
    return Path(opts.state_dir) if opts.state_dir else default_state_dir()


def session_path(opts: StackOptions) -> Path:
    """Where the session of the stack `opts` point at lives (known without asking AWS)."""
    if opts.aws:
        stack = stack_name_for(opts.stage, opts.stack_name)
        return _state_dir(opts) / SESSIONS_DIR / f"{stack}.json"
    return _state_dir(opts) / SESSION_FILE


def _pool_and_client(target: Target) -> tuple[str, str]:
    resources = target.resources
    has_api = "ServiceApiUrl" in target.outputs if target.is_aws else "api_url" in target.state
    if "ServiceUserPool" not in resources or not has_api:
        raise CliError(f"the stack {target.name} has no support API (ServiceApi / ServiceUserPool)")
    return resources["ServiceUserPool"], target.resource("ServiceUserPoolClient")


def _authenticate(target: Target, flow: str, parameters: dict[str, str]) -> dict[str, Any]:
    return _answered(target, _initiate(target, flow, parameters), None)


def _initiate(target: Target, flow: str, parameters: dict[str, str]) -> dict[str, Any]:
    _, client_id = _pool_and_client(target)
    try:
        return dict(
            target.client("cognito-idp").initiate_auth(
                ClientId=client_id, AuthFlow=flow, AuthParameters=parameters
            )
        )
    except ClientError as exc:
        raise CliError(f"login failed: {exc.response['Error'].get('Message', exc)}") from exc


def _answered(target: Target, answer: dict[str, Any], new_password: str | None) -> dict[str, Any]:
    """The tokens of an InitiateAuth answer, after setting a new password if Cognito asks."""
    if answer.get("ChallengeName") == "NEW_PASSWORD_REQUIRED" and new_password:
        _, client_id = _pool_and_client(target)
        username = answer["ChallengeParameters"].get("USER_ID_FOR_SRP") or answer[
            "ChallengeParameters"
        ].get("USERNAME")
        try:
            answer = dict(
                target.client("cognito-idp").respond_to_auth_challenge(
                    ClientId=client_id,
                    ChallengeName="NEW_PASSWORD_REQUIRED",
                    Session=answer["Session"],
                    ChallengeResponses={"USERNAME": username, "NEW_PASSWORD": new_password},
                )
            )
        except ClientError as exc:
            raise CliError(f"setting the new password failed: {exc.response['Error']}") from exc
    result = answer.get("AuthenticationResult")
    if not result:
        hint = " (pass --new-password)" if answer.get("ChallengeName") else ""
        raise CliError(f"login needs the challenge {answer.get('ChallengeName')}{hint}")
    return dict(result)


def _save(path: Path, session: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(session, handle, indent=2)


def _claims(token: str) -> dict[str, Any]:
    # The API verifies the signature; the CLI only reads expiry and groups for display.
    return dict(jwt.decode(token, options={"verify_signature": False}))


def authenticate(
    target: Target, user: str, password: str, new_password: str | None = None
) -> dict[str, Any]:
    """A session document for `user` on the stack's user pool (not stored)."""
    pool_id, _ = _pool_and_client(target)
    answer = _initiate(target, "USER_PASSWORD_AUTH", {"USERNAME": user, "PASSWORD": password})
    result = _answered(target, answer, new_password)
    claims = _claims(result["IdToken"])
    return {
        "user": user,
        "stack": target.name,
        "user_pool_id": pool_id,
        "id_token": result["IdToken"],
        "refresh_token": result.get("RefreshToken"),
        "expires_at": claims["exp"],
        "groups": claims.get("cognito:groups", []),
        "customer_id": claims.get("custom:customer_id"),
    }


def login(
    target: Target, path: Path, user: str, password: str, new_password: str | None = None
) -> dict[str, Any]:
    """Authenticate `user` against the stack's user pool and store the session at `path`."""
    session = authenticate(target, user, password, new_password)
    _save(path, session)
    return session


def _fresh_token(path: Path, target: Target, session: dict[str, Any]) -> str:
    if session["expires_at"] - REFRESH_MARGIN_S > time.time():
        return str(session["id_token"])
    if not session.get("refresh_token"):
        raise CliError(f"the login of {session['user']} expired: run `aftercare login` again")
    result = _authenticate(
        target, "REFRESH_TOKEN_AUTH", {"REFRESH_TOKEN": session["refresh_token"]}
    )
    session |= {"id_token": result["IdToken"], "expires_at": _claims(result["IdToken"])["exp"]}
    _save(path, session)
    return str(session["id_token"])


@dataclass
class ApiClient:
    """The support API with one user's token; API errors become one-line CliErrors."""

    base_url: str
    token: str

    def get(self, path: str, **query: Any) -> Any:
        return self.get_with_headers(path, **query)[0]

    def get_with_headers(self, path: str, **query: Any) -> tuple[Any, dict[str, str]]:
        """The JSON body and the response headers (lower-case names)."""
        params = {k: v for k, v in query.items() if v is not None}
        suffix = f"?{urlencode(params)}" if params else ""
        return self._call("GET", path + suffix, None)

    def post(
        self, path: str, body: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> Any:
        return self._call("POST", path, body, headers)[0]

    def put(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("PUT", path, body)[0]

    def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: dict[str, str] | None = None,
    ) -> tuple[Any, dict[str, str]]:
        sent = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        request = Request(  # noqa: S310 - the URL comes from the local stack's state file
            self.base_url.rstrip("/") + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers=sent | (headers or {}),
        )
        try:
            with urlopen(request, timeout=HTTP_TIMEOUT_S) as response:  # noqa: S310
                headers = {k.lower(): v for k, v in response.headers.items()}
                return json.loads(response.read() or b"null"), headers
        except HTTPError as exc:
            raise CliError(_api_error(exc)) from exc
        except URLError as exc:
            raise CliError(f"cannot reach the API at {self.base_url}: {exc.reason}") from exc


def _api_error(exc: HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        body = {}
    if exc.code == 401:
        return "the API refused the token (401): run `aftercare login` again"
    reason = body.get("reason", exc.code)
    return f"{reason}: {body.get('message', exc.reason)}"


def api_client_for(opts: StackOptions) -> ApiClient | None:
    """The API client when the stack (local, or `--aws --stage S`) has an API and someone logged
    in to it; else None (the CLI then reads DynamoDB directly)."""
    path = session_path(opts)
    try:
        session = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        target = opts.target()
    except TargetError:
        return None
    current_pool = target.resources.get("ServiceUserPool")
    if session.get("user_pool_id") != current_pool:
        return None
    try:
        url = target.api_url
    except TargetError:
        return None
    return ApiClient(url, _fresh_token(path, target, session))


def required_client(opts: StackOptions) -> ApiClient:
    client = api_client_for(opts)
    if client is None:
        where = f" --aws --stage {opts.stage}" if opts.aws else ""
        raise CliError(f"not logged in to this stack's API: `aftercare login{where} --user NAME`")
    return client
