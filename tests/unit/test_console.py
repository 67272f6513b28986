"""The web console's function: which path answers what, with which type and cache header, and
that nothing outside the shipped files can be read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aftercare.settings import MissingSettings
from aftercare.static_site import IMMUTABLE, NO_CACHE, StaticSite, digest_of, read_files

from tests.fakes.http_api import http_api_event
from tests.fakes.lambda_runtime import FakeContext, load_handler

ROOT = Path(__file__).resolve().parents[2]
STATIC = ROOT / "functions/console/static"
ENV = {
    "COGNITO_ENDPOINT": "https://cognito-idp.eu-west-1.amazonaws.com/",
    "USER_POOL_CLIENT_ID": "client-123",
    "AWS_REGION": "eu-west-1",
}


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return load_handler("console")


def get(console, path: str, method: str = "GET") -> dict:
    return console.handler(http_api_event(method, path, None), FakeContext())


def test_the_index_is_html_not_cached_and_names_the_current_assets(console):
    # When the browser opens /console (with or without the slash)
    for path in ("/console", "/console/"):
        answer = get(console, path)
        # Then it gets index.html, revalidated every time, pointing at digest-named assets
        assert answer["statusCode"] == 200
        assert answer["headers"]["content-type"].startswith("text/html")
        assert answer["headers"]["cache-control"] == NO_CACHE
        digest = console.deps().digest
        assert f'src="/console/assets/{digest}/app.js"' in answer["body"]
        assert "{{ASSETS}}" not in answer["body"]


def test_assets_of_the_current_digest_are_cached_for_a_year_with_their_type(console):
    digest = console.deps().digest
    for name, content_type in (("app.js", "text/javascript"), ("style.css", "text/css")):
        answer = get(console, f"/console/assets/{digest}/{name}")
        assert answer["statusCode"] == 200
        assert answer["headers"]["content-type"].startswith(content_type)
        assert answer["headers"]["cache-control"] == IMMUTABLE
        assert answer["body"] == (STATIC / name).read_text(encoding="utf-8")


def test_an_asset_asked_for_under_an_old_digest_is_served_but_not_cached(console):
    # Given a page loaded before a deployment, asking for a module under the old digest
    answer = get(console, "/console/assets/0123456789ab/views/engineer.js")
    # Then it still works, but no cache keeps the new content under the old name
    assert answer["statusCode"] == 200
    assert answer["headers"]["cache-control"] == NO_CACHE


def test_config_json_says_where_to_sign_in_and_is_not_cached(console):
    answer = get(console, "/console/config.json")
    assert answer["statusCode"] == 200
    assert answer["headers"]["content-type"] == "application/json"
    assert answer["headers"]["cache-control"] == NO_CACHE
    assert json.loads(answer["body"]) == {
        "cognito_endpoint": ENV["COGNITO_ENDPOINT"],
        "client_id": "client-123",
        "region": "eu-west-1",
        "api_base": "",
    }


def test_the_browser_may_only_connect_to_the_api_and_the_sign_in_endpoint(console):
    csp = get(console, "/console")["headers"]["content-security-policy"]
    assert "connect-src 'self' https://cognito-idp.eu-west-1.amazonaws.com" in csp
    assert "script-src 'self'" in csp


@pytest.mark.parametrize(
    "path",
    [
        "/console/assets/x/nope.js",
        "/console/nope.html",
        "/console/assets/x",
        "/console/handler.py",
        "/console/assets/x/index.html",  # the index is only served templated, at /console
    ],
)
def test_unknown_files_are_404(console, path):
    answer = get(console, path)
    assert answer["statusCode"] == 404
    assert json.loads(answer["body"])["reason"] == "not_found"


@pytest.mark.parametrize(
    "path",
    [
        "/console/assets/x/../../handler.py",
        "/console/assets/x/../handler.py",
        "/console/assets/x/%2e%2e/handler.py",
        "/console/assets/x/..%2Fhandler.py",
        "/console/assets/x//etc/passwd",
        "/console/assets/x/static/../handler.py",
        "/console/assets/x/C:\\windows\\win.ini",
    ],
)
def test_no_path_leaves_the_shipped_files(console, path):
    # When a path tries to climb out of static/
    answer = get(console, path)
    # Then nothing is read from disk: the lookup only knows the shipped files
    assert answer["statusCode"] == 404
    assert "import" not in answer["body"]


def test_only_get_and_head_are_answered(console):
    assert get(console, "/console", method="POST")["statusCode"] == 405


def test_a_missing_variable_fails_with_its_name(monkeypatch):
    monkeypatch.delenv("USER_POOL_CLIENT_ID", raising=False)
    monkeypatch.setenv("COGNITO_ENDPOINT", "https://x")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    module = load_handler("console", "handler_console_unset")
    with pytest.raises(MissingSettings, match="USER_POOL_CLIENT_ID"):
        module.deps()


def test_the_digest_changes_with_any_file(tmp_path):
    files = {"index.html": "<p>{{ASSETS}}</p>", "app.js": "1"}
    assert digest_of(files) != digest_of({**files, "app.js": "2"})
    assert digest_of(files) != digest_of({**files, "more.js": "1"})


def test_read_files_skips_types_it_does_not_serve_and_symlinks(tmp_path):
    (tmp_path / "index.html").write_text("i")
    (tmp_path / "secret.py").write_text("s")
    (tmp_path / "link.js").symlink_to(ROOT / "functions/console/handler.py")
    assert read_files(tmp_path) == {"index.html": "i"}


def test_a_site_without_an_index_is_a_packaging_error():
    with pytest.raises(ValueError, match=r"index\.html"):
        StaticSite({"app.js": ""}, {})


def test_every_module_the_app_imports_is_shipped():
    # The app has no build step: a typo in an import path would only show in a browser.
    files = read_files(STATIC)
    for name, text in files.items():
        if not name.endswith(".js"):
            continue
        for target in re.findall(r'from "(\.{1,2}/[^"]+)"', text):
            resolved = (Path(name).parent / target).as_posix()
            parts: list[str] = []
            for part in resolved.split("/"):
                if part == "..":
                    parts.pop()
                elif part != ".":
                    parts.append(part)
            assert "/".join(parts) in files, (name, target)


def test_both_languages_have_every_message():
    text = (STATIC / "i18n.js").read_text(encoding="utf-8")
    en, zh = text.split("const zh = {", 1)
    keys = lambda part: set(re.findall(r'"([a-z_.0-9A-Z -]+)": "', part))  # noqa: E731
    assert keys(en.split("const en = {", 1)[1]) == keys(zh.split("export const MESSAGES", 1)[0])
