from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flags.models import Flag
from flags.names import MATCH_ENGINE_V1


@pytest.fixture
def engine_on(db) -> None:
    """The run page's flag on for everyone (tests run without migrations, so the data
    migration that creates it does not)."""
    Flag.objects.update_or_create(name=MATCH_ENGINE_V1, defaults={"everyone": True})


PAGE = b"""<!doctype html><html><head><title>Orbitly | Home</title>
<meta name="description" content="Orbitly builds satellite payments infrastructure for fintech teams.">
</head><body><p>Hello</p></body></html>"""


class Site:
    def __init__(self) -> None:
        self.status = 200
        self.hits = 0
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits += 1
                self.send_response(site.status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(PAGE)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site(settings):
    settings.RUNS_FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    s = Site()
    yield s
    s.close()
