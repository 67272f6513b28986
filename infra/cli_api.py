"""`aftercare login` and `aftercare diag …`: the engineer CLI through the support HTTP API.

`login` stores the Cognito tokens of one user (mode 0600): for the local stack in
`<state dir>/session.json`, for a deployed stage (`--aws --stage S`) in
`<state dir>/sessions/<stack name>.json`. From then on `tickets list/show` and `diag` go through
that stack's API (`api_url` in the state file, or the stack's `ServiceApiUrl` output) with that
user's rights. A session from another user pool is ignored. Expired ID tokens are refreshed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode
from urllib.request import Request, urlopen

import jwt
from aftercare.adapters.dynamodb import DynamoTicketStore
from aftercare.domain.paging import (
    MAX_PAGE,
    InvalidCursor,
    TicketQuery,
    decode_cursor,
    encode_cursor,
)
from botocore.exceptions import ClientError

from infra.cli import LIST_FIELDS, CliError, emit, store_of, target_of, ticket_row
from infra.local.provision_api import LOCAL_PASSWORD
from infra.target import Target, TargetError, default_state_dir, stack_name_for

SESSION_FILE = "session.json"
SESSIONS_DIR = "sessions"
REFRESH_MARGIN_S = 60
HTTP_TIMEOUT_S = 35
POLL_INTERVAL_S = 0.25
PAGE_DEFAULT = 100  # one page of `tickets list` unless --limit
NEXT_CURSOR_HEADER = "X-Next-Cursor"


# --------------------------------------------------------------------------- session


def _state_dir(args: argparse.Namespace) -> Path:
    return Path(args.state_dir) if args.state_dir else default_state_dir()


def session_path(args: argparse.Namespace) -> Path:
    """Where the session of the stack `args` point at lives (known without asking AWS)."""
    if getattr(args, "aws", False):
        stack = stack_name_for(args.stage, getattr(args, "stack_name", None))
        return _state_dir(args) / SESSIONS_DIR / f"{stack}.json"
    return _state_dir(args) / SESSION_FILE


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


# --------------------------------------------------------------------------- client


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

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, body)[0]

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None
    ) -> tuple[Any, dict[str, str]]:
        request = Request(  # noqa: S310 - the URL comes from the local stack's state file
            self.base_url.rstrip("/") + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
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


def api_client_for(args: argparse.Namespace) -> ApiClient | None:
    """The API client when the stack (local, or `--aws --stage S`) has an API and someone logged
    in to it; else None (the CLI then reads DynamoDB directly)."""
    path = session_path(args)
    try:
        session = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    try:
        target = target_of(args)
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


def _required_client(args: argparse.Namespace) -> ApiClient:
    client = api_client_for(args)
    if client is None:
        where = f" --aws --stage {args.stage}" if getattr(args, "aws", False) else ""
        raise CliError(f"not logged in to this stack's API: `aftercare login{where} --user NAME`")
    return client


# --------------------------------------------------------------------------- tickets via the API


@dataclass(frozen=True)
class Listing:
    """What `tickets list` asks for: filters, page size, where to start, whether to follow."""

    status: str | None
    thing: str | None
    limit: int
    cursor: str | None
    follow: bool


Page = tuple[list[dict[str, Any]], str | None]


def api_page(client: ApiClient, listing: Listing, cursor: str | None) -> Page:
    """One page through the API (with the logged-in user's rights) and the next cursor."""
    rows, headers = client.get_with_headers(
        "/tickets", status=listing.status, thing=listing.thing, limit=listing.limit, cursor=cursor
    )
    picked = [{k: row.get(k) for k in LIST_FIELDS["tickets"]} for row in rows]
    return picked, headers.get(NEXT_CURSOR_HEADER.lower())


def direct_page(store: DynamoTicketStore, listing: Listing, cursor: str | None) -> Page:
    """One page read from DynamoDB directly (every ticket), with the API's cursor format."""
    try:
        after = (
            decode_cursor(cursor, status=listing.status, thing=listing.thing) if cursor else None
        )
    except InvalidCursor as exc:
        raise CliError(f"invalid_cursor: {exc}") from exc
    things = (listing.thing,) if listing.thing else None
    page = store.page_tickets(
        TicketQuery(status=listing.status, things=things, after=after, limit=listing.limit)
    )
    following = page.next_after and encode_cursor(
        page.next_after, status=listing.status, thing=listing.thing
    )
    return [ticket_row(t) for t in page.tickets], following or None


def collect(page_of: Callable[[str | None], Page], listing: Listing) -> Page:
    """One page, or with `follow` every page from `listing.cursor` on."""
    rows, cursor = page_of(listing.cursor)
    while listing.follow and cursor:
        more, cursor = page_of(cursor)
        rows += more
    return rows, cursor


def cmd_tickets_list(args: argparse.Namespace) -> None:
    """List tickets, newest first, a page at a time (`--all` follows the cursor to the end).

    Logged in to the local stack: through the API with that user's rights; otherwise (or with
    `--aws`) straight from DynamoDB. stdout stays one JSON array with `--json`; the cursor of
    the next page, when there is one, goes to stderr."""
    limit = args.limit if args.limit is not None else MAX_PAGE if args.all else PAGE_DEFAULT
    if not 1 <= limit <= MAX_PAGE:
        raise CliError(f"--limit must be between 1 and {MAX_PAGE}")
    listing = Listing(args.status, args.thing, limit, args.cursor, args.all)
    if (api := api_client_for(args)) is not None:
        rows, cursor = collect(lambda c: api_page(api, listing, c), listing)
    else:
        store = store_of(target_of(args))
        rows, cursor = collect(lambda c: direct_page(store, listing, c), listing)
    emit(rows, args.json, LIST_FIELDS["tickets"])
    if cursor:
        print(f"more tickets: --cursor {cursor} (or --all)", file=sys.stderr)


def show_ticket(client: ApiClient, ticket_id: str) -> dict[str, Any]:
    """The same document as the direct `tickets show` (diagnostics: `aftercare diag list`)."""
    view = dict(client.get(f"/tickets/{quote(ticket_id, safe='')}"))
    view.pop("diagnostics", None)
    return view


# --------------------------------------------------------------------------- commands


def cmd_login(args: argparse.Namespace) -> None:
    """Log in to a stack's support API (local seeded users share the documented password)."""
    password = args.password or os.environ.get("AFTERCARE_PASSWORD")
    if password is None and args.aws:
        raise CliError("pass --password or set AFTERCARE_PASSWORD")
    target = target_of(args)
    session = login(
        target, session_path(args), args.user, password or LOCAL_PASSWORD, args.new_password
    )
    shown = {k: session[k] for k in ("user", "groups", "customer_id", "expires_at")}
    if args.json:
        emit(shown, True)
        return
    groups = ", ".join(session["groups"]) or "no groups"
    owner = f" (customer {session['customer_id']})" if session["customer_id"] else ""
    print(f"logged in as {session['user']}: {groups}{owner}")


def _progress(record: dict[str, Any], started: float) -> None:
    print(
        f"  {time.monotonic() - started:5.1f}s  {record['request_id']}  {record['status']}",
        file=sys.stderr,
        flush=True,
    )


def wait_for(client: ApiClient, request_id: str, limit_s: float) -> dict[str, Any]:
    """Poll a diagnostic until it leaves `pending` (or `limit_s` passes)."""
    started = time.monotonic()
    record = client.get(f"/diagnostics/{quote(request_id, safe='')}")
    while record["status"] == "pending" and time.monotonic() - started < limit_s:
        _progress(record, started)
        time.sleep(POLL_INTERVAL_S)
        record = client.get(f"/diagnostics/{quote(request_id, safe='')}")
    _progress(record, started)
    return dict(record)


def _diag_row(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "request_id": record["request_id"],
        "status": record["status"],
        "result": {
            **(record.get("result") or {}),
            "routine": record["routine"],
            "outcome": record.get("outcome"),
            "latency_ms": record.get("latency_ms"),
        }
        if record.get("result")
        else None,
    }


def cmd_diag_run(args: argparse.Namespace) -> None:
    """Run a diagnostic routine on a ticket's device; with --wait, until it answers."""
    client = _required_client(args)
    body: dict[str, Any] = {}
    if args.routine:
        body["routine"] = args.routine
    if args.timeout:
        body["timeout_s"] = args.timeout
    if args.param:
        body["params"] = dict(args.param)
    record = client.post(f"/tickets/{quote(args.ticket_id, safe='')}/diagnostics", body)
    if args.wait:
        limit = (args.timeout or 300) + 10
        record = wait_for(client, record["request_id"], limit)
    row = _diag_row(record)
    if args.json:
        emit(row, True)
        return
    print(f"{row['request_id']}: {row['status']}")
    if row["result"]:
        emit(row["result"], False)


def cmd_diag_show(args: argparse.Namespace) -> None:
    record = _required_client(args).get(f"/diagnostics/{quote(args.request_id, safe='')}")
    emit(record, True)


def cmd_diag_list(args: argparse.Namespace) -> None:
    listing = _required_client(args).get(f"/tickets/{quote(args.ticket_id, safe='')}/diagnostics")
    rows = [
        {
            "request_id": r["request_id"],
            "routine": r["routine"],
            "purpose": r["purpose"],
            "status": r["status"],
            "outcome": r.get("outcome"),
            "latency_ms": r.get("latency_ms"),
            "requested_at": r["requested_at"],
        }
        for r in listing["diagnostics"]
    ]
    emit(rows, args.json, ["request_id", "routine", "purpose", "status", "outcome", "latency_ms"])


def _param(text: str) -> tuple[str, Any]:
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def _options(parser: argparse.ArgumentParser) -> None:
    from infra.cli import _common

    _common(parser)


def register(subparsers: Any) -> None:
    login_parser = subparsers.add_parser("login", help="log in to a stack's support API")
    login_parser.add_argument("--user", required=True, help="e.g. eng-ada, mgr-grace, cust-0001")
    login_parser.add_argument(
        "--password", help="default: $AFTERCARE_PASSWORD, else the local seeded users' password"
    )
    login_parser.add_argument(
        "--new-password", help="the permanent password to set when Cognito asks for one"
    )
    _options(login_parser)
    login_parser.set_defaults(func=cmd_login)

    diag = subparsers.add_parser("diag", help="remote diagnostics (through the API)")
    diag_sub = diag.add_subparsers(required=True)
    run = diag_sub.add_parser("run", help=cmd_diag_run.__doc__)
    run.add_argument("ticket_id")
    run.add_argument("--routine", help="default: the ticket's routine from the catalog")
    run.add_argument("--param", action="append", type=_param, metavar="NAME=VALUE", default=[])
    run.add_argument("--timeout", type=int, help="seconds the device has to answer")
    run.add_argument("--wait", action="store_true", help="wait for the answer, showing progress")
    _options(run)
    run.set_defaults(func=cmd_diag_run)
    show = diag_sub.add_parser("show", help="one diagnostic's status and result")
    show.add_argument("request_id")
    _options(show)
    show.set_defaults(func=cmd_diag_show)
    listing = diag_sub.add_parser("list", help="the diagnostics of a ticket")
    listing.add_argument("ticket_id")
    _options(listing)
    listing.set_defaults(func=cmd_diag_list)
