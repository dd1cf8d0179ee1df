"""`make docs-events`: the catalogue served in faststream's AsyncAPI page with the AsyncAPI
React component vendored from npm at its pinned version, nothing loaded from the internet;
and the page, opened in headless Chromium, draws the catalogue's channels."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.service

ROOT = Path(__file__).resolve().parents[2]
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_events", ROOT / "scripts" / "docs_events.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_events"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    docs_events = _script()
    httpd = docs_events.make_server("127.0.0.1", 0, cache=tmp_path_factory.mktemp("docs-events"))
    docs_events.serve_in_thread(httpd)
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["content-type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, "", b""


def test_the_page_the_catalogue_and_the_pinned_scripts_are_served(served: str) -> None:
    status, content_type, body = _get(served + "/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    html = body.decode()
    assert "<title>Studyhall events AsyncAPI</title>" in html
    assert '<script src="vendor/react-component/browser/standalone/index.js">' in html
    assert "https://" not in html  # no CDN, no favicon from asyncapi.com
    assert "studyhall.members.{communityId}.MemberJoined" in html  # the catalogue, verbatim

    status, _, catalogue = _get(served + "/asyncapi.json")
    assert status == 200
    assert catalogue == (ROOT / "docs" / "asyncapi.json").read_bytes()

    status, content_type, script = _get(served + "/vendor/react-component/package.json")
    assert json.loads(script)["version"] == "3.1.5"
    status, content_type, script = _get(
        served + "/vendor/react-component/browser/standalone/index.js"
    )
    assert (status, content_type) == (200, "text/javascript")
    assert b"AsyncApiStandalone" in script
    status, _, schema = _get(served + "/vendor/specs/schemas/3.0.0.json")
    assert status == 200
    assert "3.0.0" in json.loads(schema)["$id"]
    assert _get(served + "/vendor/specs/../../../pyproject.toml")[0] == 404
    assert _get(served + "/nothing-here")[0] == 404


@pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
    reason="Debian's chromium and chromium-driver are not installed (scripts/bootstrap.sh "
    "--with-test-servers installs them)",
)
def test_the_page_draws_the_catalogue_in_a_browser(served: str) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        browser.get(served + "/")
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            # The component separates a title from its version with a no-break space.
            text = browser.execute_script("return document.body.innerText").replace("\xa0", " ")
            if "studyhall.members.{communityId}.MemberInactive" in text:
                break
            time.sleep(0.2)
        # The component parsed the catalogue and drew its info, operations and messages.
        assert text.startswith("Studyhall events 1.0.0"), text[:2000]
        assert "SEND studyhall.members.{communityId}.MemberInactive" in text, text[:2000]
        assert "RECEIVE studyhall.members.{communityId}.MemberJoined" in text
        assert "CloudEvents 1.0 binary mode" in text
    finally:
        browser.quit()


def test_faststreams_asyncapi_model_accepts_the_catalogue() -> None:
    from faststream._internal._compat import json_dumps, model_parse
    from faststream.specification.asyncapi.v3_0_0.schema import ApplicationSchema

    catalogue = json.loads((Path(__file__).resolve().parents[2] / "docs/asyncapi.json").read_text())
    parsed = model_parse(ApplicationSchema, json_dumps(catalogue))
    assert set(parsed.channels) == set(catalogue["channels"])
