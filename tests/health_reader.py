"""The one /health reader of the tests: status and body, also when the server answers 503."""

import json
import urllib.error
import urllib.request


def read_health(port: int, timeout: float = 10) -> tuple[int, dict]:
    """GET /health on loopback (tests run servers with auth off): (HTTP status, JSON body)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:  # "degraded" is a 503 with the same body
        return e.code, json.loads(e.read())
