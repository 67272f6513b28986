"""The web console's files as HTTP answers: a pure lookup, no AWS, no environment.

A `StaticSite` reads a directory of files once (at cold start) and answers a GET for a path
under its prefix (`/console`):

    /console, /console/               index.html, `no-cache` (it names the current assets)
    /console/config.json              the sign-in and API settings, `no-cache`
    /console/assets/<digest>/<file>   a file of the directory, cached for a year (immutable)

`<digest>` is a hash of every file's name and content, written into index.html where it says
`{{ASSETS}}`: a new deployment changes the digest, so browsers fetch the new modules and a
long cache can never serve old code with a new index. An asset asked for under another digest
(a page loaded just before a deployment) is still served, but `no-cache`, so no cache keeps the
wrong content under that URL.

Only files found when the site was built can be answered: a request names a key of that
dictionary, never a path on disk, so `..`, encoded slashes or symlinks cannot reach anything
else. Unknown files and file types outside `CONTENT_TYPES` are 404.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
IMMUTABLE: Final = "public, max-age=31536000, immutable"
NO_CACHE: Final = "no-cache"
INDEX: Final = "index.html"
ASSETS_MARK: Final = "{{ASSETS}}"
SECURITY_HEADERS: Final = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    # Scripts and styles only from this origin; data calls to the API (same origin) and to
    # the sign-in endpoint, whose origin `StaticSite` adds.
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: str
    cache_control: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def as_http_response(self) -> dict[str, Any]:
        """The API Gateway (payload 2.0) response."""
        return {
            "statusCode": self.status,
            "headers": {
                "content-type": self.content_type,
                "cache-control": self.cache_control,
                **self.headers,
            },
            "body": self.body,
            "isBase64Encoded": False,
        }


def not_found(path: str) -> Answer:
    body = json.dumps({"reason": "not_found", "message": f"no console file at {path}"})
    return Answer(404, "application/json", body, NO_CACHE)


def read_files(directory: Path) -> dict[str, str]:
    """Every file under `directory` with a served type, by its relative POSIX path."""
    found = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.suffix in CONTENT_TYPES:
            found[path.relative_to(directory).as_posix()] = path.read_text(encoding="utf-8")
    return found


def digest_of(files: Mapping[str, str]) -> str:
    hashed = hashlib.sha256()
    for name in sorted(files):
        hashed.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return hashed.hexdigest()[:12]


class StaticSite:
    """The console's files and config under `prefix`."""

    def __init__(
        self, files: Mapping[str, str], config: Mapping[str, Any], prefix: str = "/console"
    ) -> None:
        if INDEX not in files:
            raise ValueError(f"the console has no {INDEX}")
        self.prefix = prefix.rstrip("/")
        self.files = dict(files)
        self.digest = digest_of(self.files)
        self.assets_url = f"{self.prefix}/assets/{self.digest}"
        self.config = json.dumps(dict(config), sort_keys=True)
        connect = " ".join(["'self'", *_origins(config)])
        self.headers = {
            **SECURITY_HEADERS,
            "content-security-policy": SECURITY_HEADERS["content-security-policy"]
            + f"; connect-src {connect}",
        }

    def answer(self, method: str, path: str) -> Answer:
        if method not in ("GET", "HEAD"):
            return Answer(
                405, "application/json", json.dumps({"reason": "method_not_allowed"}), NO_CACHE
            )
        if path in (self.prefix, f"{self.prefix}/", f"{self.prefix}/{INDEX}"):
            return self._index()
        if path == f"{self.prefix}/config.json":
            return Answer(200, CONTENT_TYPES[".json"], self.config, NO_CACHE)
        rest = path.removeprefix(f"{self.prefix}/assets/")
        if rest == path or "/" not in rest:
            return not_found(path)
        digest, name = rest.split("/", 1)
        body = self.files.get(name)
        if body is None or name == INDEX:
            return not_found(path)
        cache = IMMUTABLE if digest == self.digest else NO_CACHE
        return Answer(200, CONTENT_TYPES[Path(name).suffix], body, cache, self.headers)

    def _index(self) -> Answer:
        body = self.files[INDEX].replace(ASSETS_MARK, self.assets_url)
        return Answer(200, CONTENT_TYPES[".html"], body, NO_CACHE, self.headers)


def _origins(config: Mapping[str, Any]) -> list[str]:
    """The scheme://host[:port] of every absolute URL in the config (the sign-in endpoint)."""
    origins = []
    for value in config.values():
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            scheme, _, rest = value.partition("://")
            origins.append(f"{scheme}://{rest.split('/', 1)[0]}")
    return origins
