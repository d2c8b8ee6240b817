"""The dashboard's pages and files, in-process: served without a token (they
carry no data), under a strict Content-Security-Policy, while ``/v2`` still
needs one; every file a page loads exists and ships with the package; the
vendored libraries are the versions their notice names. The pages at work in a
browser: tests/browser."""
from __future__ import annotations

import fnmatch
import hashlib
import re
import tomllib
from pathlib import Path

import pytest

from orchestrator.api import ApiConfig, create_app
from orchestrator.api.auth import Principal

ROOT = Path(__file__).parent.parent.parent
PACKAGE = ROOT / "orchestrator" / "dashboard"
PAGES = ["/", "/executions/e1", "/workbooks", "/workbooks/stack", "/workflows/stack.deploy"]


@pytest.fixture
def client(sqlite_store):
    tokens = {"op": Principal("alpha", "operator")}
    return create_app(ApiConfig(store=sqlite_store, tokens=tokens)).test_client()


@pytest.mark.parametrize("path", PAGES)
def test_each_page_is_served_without_a_token_under_a_strict_policy(client, path):
    r = client.get(path)
    assert r.status_code == 200 and r.mimetype == "text/html"
    policy = r.headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
    assert r.headers["Cache-Control"] == "no-store"
    html = r.get_data(as_text=True)
    assert 'data-auth="on"' in html and 'id="login-form"' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "an inline script (CSP forbids it)"
    assert not re.search(r"\son[a-z]+=", html), "an inline event handler (CSP forbids it)"


def test_a_page_shows_its_key_as_text_never_as_markup(client):
    html = client.get("/workbooks/<img src=x onerror=alert(1)>").get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_with_no_auth_the_pages_do_not_ask_for_a_token(sqlite_store):
    client = create_app(ApiConfig(store=sqlite_store, no_auth=True)).test_client()
    assert 'data-auth="off"' in client.get("/").get_data(as_text=True)
    assert client.get("/v2/whoami").get_json() == \
        {"project": "default", "role": "admin", "name": "no-auth", "auth": False}


def test_every_file_a_page_loads_is_served(client):
    loaded = set()
    for path in PAGES:
        html = client.get(path).get_data(as_text=True)
        loaded |= set(re.findall(r'(?:src|href)="(/dashboard/static/[^"]+)"', html))
    assert "/dashboard/static/vendor/cytoscape.min.js" in loaded and len(loaded) >= 8
    for url in sorted(loaded):
        r = client.get(url)
        assert r.status_code == 200, url
        assert r.mimetype in ("text/javascript", "application/javascript", "text/css"), url
        r.close()


def test_the_api_and_everything_else_still_need_a_token(client):
    assert client.get("/v2/executions").status_code == 401
    assert client.get("/v2/whoami").status_code == 401
    assert client.get("/no-such-page").status_code == 401
    assert client.get("/dashboard/static/../__init__.py").status_code == 404
    r = client.get("/v2/whoami", headers={"Authorization": "Bearer op"})
    assert r.get_json()["role"] == "operator"


def test_the_vendored_libraries_are_what_their_notice_says():
    notice = (PACKAGE / "static" / "vendor" / "README.md").read_text()
    rows = re.findall(r"^\| (\S+\.js) \| .*?\| ([0-9a-f]{64}) \|$", notice, re.M)
    assert {name for name, _ in rows} == {"cytoscape.min.js", "cytoscape-dagre.min.js"}
    for name, digest in rows:
        data = (PACKAGE / "static" / "vendor" / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, f"{name} differs from the notice"
    assert b'"3.35.0"' in (PACKAGE / "static" / "vendor" / "cytoscape.min.js").read_bytes()
    for licence in ("cytoscape", "cytoscape-dagre", "dagre", "graphlib"):
        assert "MIT" in notice and (PACKAGE / "static" / "vendor" / f"LICENSE.{licence}").exists()


def test_the_package_ships_every_template_and_static_file():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["orchestrator.dashboard"]
    files = [p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
             if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts]
    assert len(files) >= 15
    missing = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert not missing, f"not in package-data, so not installed: {missing}"
