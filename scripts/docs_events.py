"""`make docs-events`: the event catalogue (docs/asyncapi.json) in faststream's AsyncAPI page,
served from this machine.

faststream's page loads `@asyncapi/react-component` from a CDN, which is unreachable here and
in many deployments; this serves the same page with the component (and `@asyncapi/specs`, the
AsyncAPI JSON Schemas) vendored from the npm registry at pinned versions and checked against
their pinned sha512 integrity, into `.studyhall/docs-events/` (not committed; fetched once
over HTTPS, then reused: no npm needed).

faststream's own file loader (`faststream docs serve docs/asyncapi.json`) accepts the
catalogue (its AsyncAPI 3.0 model wants `servers.<name>.pathname` and a message on every
channel, which the generator writes; tests/clients/test_docs_events.py parses it with that
model), but loads the page's scripts from a CDN. So the page is faststream's
(`get_asyncapi_html`) with the scripts served from here, and the document handed to it is the
catalogue exactly as generated, not faststream's re-parse of it.

Usage: scripts/docs_events.py [--host 127.0.0.1] [--port 8088] [--cache DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import re
import shutil
import sys
import tarfile
import tempfile
import threading
import urllib.request
from dataclasses import dataclass
from functools import partial
from http import server
from pathlib import Path
from typing import Any

from faststream.specification.asyncapi.site import get_asyncapi_html

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "docs" / "asyncapi.json"
CACHE = ROOT / ".studyhall" / "docs-events"
# Pinned: the component's version is the one faststream 0.7.8's page asks the CDN for. The
# integrity is the registry's `dist.integrity` of that version.
PACKAGES = {
    "react-component": (
        "@asyncapi/react-component",
        "3.1.5",
        "Aq4I++uX6lOWxgBn+D7ly/GXasHjVcORz8eIGii8RgFjZ0i8mDth6LjFHb/yHVr3ANxLFLodXUgwEBhcSvfV/Q==",
    ),
    "specs": (
        "@asyncapi/specs",
        "6.11.1",
        "A3WBLqAKGoJ2+6FWFtpjBlCQ1oFCcs4GxF7zsIGvNqp/klGUHjlA3aAcZ9XMMpLGE8zPeYDz2x9FmO6DSuKraQ==",
    ),
}
REGISTRY = "https://registry.npmjs.org"
JS = "vendor/react-component/browser/standalone/index.js"
CSS = "vendor/react-component/styles/default.min.css"


@dataclass(frozen=True)
class CatalogueDocument:
    """The catalogue as faststream's page expects a specification (title, to_json)."""

    document: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.document["info"]["title"])

    def to_jsonable(self) -> Any:
        return self.document

    def to_json(self) -> str:
        return json.dumps(self.document)

    def to_yaml(self) -> str:  # the protocol asks for it; the page never calls it
        raise NotImplementedError


def vendor(cache: Path = CACHE) -> dict[str, Path]:
    """Each pinned package unpacked under `cache`, fetched from the registry when missing."""
    unpacked: dict[str, Path] = {}
    for key, (name, version, integrity) in PACKAGES.items():
        target = cache / f"{key}-{version}"
        if not (target / "package.json").exists():
            url = f"{REGISTRY}/{name}/-/{name.split('/')[-1]}-{version}.tgz"
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    archive = response.read()
            except OSError as error:
                sys.exit(f"docs-events: cannot fetch {url}: {error}")
            digest = base64.b64encode(hashlib.sha512(archive).digest()).decode()
            if digest != integrity:
                sys.exit(f"docs-events: {url} does not match its pinned sha512 integrity")
            with tempfile.TemporaryDirectory() as scratch:
                staging = Path(scratch) / "unpacked"
                with tarfile.open(fileobj=io.BytesIO(archive)) as packed:
                    packed.extractall(staging, filter="data")
                if target.exists():
                    shutil.rmtree(target)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(staging / "package", target)
        found = json.loads((target / "package.json").read_text())
        if (found["name"], found["version"]) != (name, version):
            sys.exit(f"docs-events: {target} holds {found['name']}@{found['version']}")
        unpacked[key] = target
    return unpacked


def page(catalogue: Path = CATALOGUE) -> str:
    html = get_asyncapi_html(
        CatalogueDocument(json.loads(catalogue.read_text())),
        asyncapi_js_url=JS,
        asyncapi_css_url=CSS,
        try_it_out_path=None,
    )
    # Nothing from the internet: the page's favicons live on asyncapi.com.
    return re.sub(r'\s*<link rel="icon"[^>]*>', "", html)


class Handler(server.BaseHTTPRequestHandler):
    def __init__(
        self, *args: Any, html: bytes, catalogue: Path, packages: dict[str, Path], **kwargs: Any
    ) -> None:
        self.html = html
        self.catalogue = catalogue
        self.packages = packages
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(self.html, "text/html; charset=utf-8")
        elif path == "/asyncapi.json":
            self._send(self.catalogue.read_bytes(), "application/json")
        elif path.startswith("/vendor/"):
            self._vendored(path.removeprefix("/vendor/"))
        else:
            self.send_error(404)

    def _vendored(self, rest: str) -> None:
        key, _, inner = rest.partition("/")
        base = self.packages.get(key)
        if base is None:
            self.send_error(404)
            return
        file = (base / inner).resolve()
        if not file.is_relative_to(base.resolve()) or not file.is_file():
            self.send_error(404)
            return
        types = {".js": "text/javascript", ".css": "text/css", ".json": "application/json"}
        self._send(file.read_bytes(), types.get(file.suffix, "application/octet-stream"))

    def _send(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


def make_server(
    host: str, port: int, *, cache: Path = CACHE, catalogue: Path = CATALOGUE
) -> server.ThreadingHTTPServer:
    handler = partial(
        Handler, html=page(catalogue).encode(), catalogue=catalogue, packages=vendor(cache)
    )
    return server.ThreadingHTTPServer((host, port), handler)


def serve_in_thread(httpd: server.ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return thread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--cache", type=Path, default=CACHE)
    args = parser.parse_args()
    httpd = make_server(args.host, args.port, cache=args.cache)
    host, port = httpd.server_address[:2]
    print(f"Studyhall events: http://{host!s}:{port}/ (catalogue at /asyncapi.json); Ctrl-C stops")
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


if __name__ == "__main__":
    main()
