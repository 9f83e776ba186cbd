"""Local stand-ins for AWS Cost Explorer on 127.0.0.1, for tests through real botocore HTTP calls.

- ``MotoServer``: moto in server mode. GetCostAndUsage answers from a queue of results loaded
  through moto's own API; each distinct request takes the next queued result, so the pages of
  a request chain (each request differs by its NextPageToken) come back in queue order.
- ``CostExplorerFront``: a thin HTTP server in front of moto for what moto cannot do: it answers
  ListCostAllocationTags from ``tags``, answers the next requests with queued errors in Cost
  Explorer's JSON error format (``fail``), answers GetCostAndUsage with given bodies, raw JSON
  text included (``answer``, ``answer_always``: malformed pages, NaN, token loops), and forwards
  everything else to moto. It logs the ``X-Amz-Target`` and body of every request, so tests can
  count paid requests. After ``RUNAWAY`` GetCostAndUsage requests it answers only errors, so that
  a client that pages for ever fails a test instead of hanging it.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from moto.server import ThreadedMotoServer


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class MotoServer:
    def __init__(self) -> None:
        self.port = _free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> MotoServer:
        self._server.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()

    def _post(self, path: str, body: dict) -> None:
        request = urllib.request.Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status in (200, 201), response.status

    def queue_results(self, *responses: dict) -> None:
        """Queue GetCostAndUsage results, in the order the requests will be made."""
        results = [{k: v for k, v in r.items() if k != "ResponseMetadata"} for r in responses]
        self._post("/moto-api/static/ce/cost-and-usage-results", {"results": results})

    def reset(self) -> None:
        self._post("/moto-api/reset", {})


RUNAWAY = 1000


class CostExplorerFront:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.tags: dict[str, str] = {}
        self.failures: list[tuple[str, str]] = []
        self.answers: list[dict | str] = []
        self.always: Callable[[dict], dict | str] | None = None
        self.requests: list[tuple[str, dict]] = []
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def fail(self, code: str, message: str, times: int = 1) -> None:
        """Answer the next ``times`` requests with the error ``code`` (e.g. LimitExceededException)."""
        self.failures += [(code, message)] * times

    def answer(self, *bodies: dict | str) -> None:
        """Answer the next GetCostAndUsage requests with these bodies (dicts, or raw JSON text), in order."""
        self.answers += bodies

    def answer_always(self, make: Callable[[dict], dict | str]) -> None:
        """Answer every GetCostAndUsage request (once ``answer``'s are used) with ``make(request body)``."""
        self.always = make

    def targets(self, operation: str = "GetCostAndUsage") -> list[dict]:
        """Bodies of the requests made for ``operation``, failed or not, in order."""
        return [body for target, body in self.requests if target.endswith("." + operation)]

    def __enter__(self) -> CostExplorerFront:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._http.shutdown()
        self._http.server_close()


def _handler(front: CostExplorerFront):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            target = self.headers.get("X-Amz-Target", "")
            body = json.loads(raw or b"{}")
            front.requests.append((target, body))
            paid = target.endswith(".GetCostAndUsage")
            if paid and len(front.targets()) > RUNAWAY:
                self._send(400, json.dumps({"__type": "TestFrontRunaway",
                                            "message": f"more than {RUNAWAY} requests"}).encode())
            elif front.failures:
                code, message = front.failures.pop(0)
                self._send(400, json.dumps({"__type": code, "message": message}).encode())
            elif paid and (front.answers or front.always):
                answer: Any = front.answers.pop(0) if front.answers else front.always(body)
                self._send(200, (answer if isinstance(answer, str) else json.dumps(answer)).encode())
            elif target.endswith(".ListCostAllocationTags"):
                keys = body.get("TagKeys") or sorted(front.tags)
                tags = [{"TagKey": k, "Type": "UserDefined", "Status": front.tags[k]} for k in keys if k in front.tags]
                self._send(200, json.dumps({"CostAllocationTags": tags}).encode())
            else:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                request = urllib.request.Request(front.upstream + self.path, data=raw, headers=headers, method="POST")
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        self._send(response.status, response.read())
                except urllib.error.HTTPError as error:
                    self._send(error.code, error.read())

    return Handler
