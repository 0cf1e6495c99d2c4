"""aftercall HTTP API client, Python standard library only (no dependencies).

    from aftercall_client import AftercallClient, OutcomeRejected

    client = AftercallClient("https://aftercall.internal:8080", token=os.environ["AFTERCALL_TOKEN"])
    result = client.conversation_ended({
        "conversationId": "call-123",
        "endedAt": "2026-11-26T14:30:00+01:00",
        "outcome": "resolved",
        "customer": {"id": "cus-42", "email": "ada@example.com"},
        "ticket": {"id": "T-981", "status": "solved"},
    })
    print([task["type"] for task in result["tasks"]])

Guarantees and errors:
  - conversation_ended is idempotent: the same conversationId names the same jobs, so
    calling it again (after a timeout, a crash, a retry) creates nothing new; the repeat
    answers with "created": false.
  - OutcomeRejected (HTTP 400): the outcome breaks the contract; .issues lists every field
    with what was expected. Fix the data; retrying the same outcome cannot succeed.
  - Unavailable: Redis (or the server) did not answer after `retries` attempts, each
    waiting the server's Retry-After. Retrying later is safe.
  - AftercallError: anything else (401 wrong token, 403 wrong role, 413 too large, ...).

It blocks: from asyncio code (Pipecat, LiveKit Agents) call it through
`await asyncio.to_thread(client.conversation_ended, outcome)`. See examples/README.md.
Run as a script to post an outcome file: AFTERCALL_URL=... AFTERCALL_TOKEN=... python3
aftercall_client.py outcome.json
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional

__all__ = ["AftercallClient", "AftercallError", "OutcomeRejected", "Unavailable"]


class AftercallError(Exception):
    """An answer other than success; `status` is the HTTP status (0 when none came)."""

    def __init__(self, status: int, error: str, message: str = "", body: Any = None) -> None:
        super().__init__(f"{status} {error}: {message}" if message else f"{status} {error}")
        self.status = status
        self.error = error
        self.body = body


class OutcomeRejected(AftercallError):
    """The outcome breaks the contract (400); `issues` lists {path, message} for every field."""

    def __init__(self, body: Dict[str, Any]) -> None:
        self.issues: List[Dict[str, str]] = list(body.get("issues") or [])
        detail = "; ".join(f"{issue.get('path')}: {issue.get('message')}" for issue in self.issues)
        super().__init__(400, body.get("error", "invalid_outcome"), detail, body)


class Unavailable(AftercallError):
    """Redis or the server did not answer in time (503 or no connection); retrying later is safe."""


class AftercallClient:
    """A client of one aftercall server (or a load balancer in front of several)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        timeout: float = 5.0,
        retries: int = 3,
        max_retry_wait: float = 5.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.retries = max(1, retries)
        self.max_retry_wait = max_retry_wait

    def __repr__(self) -> str:  # never shows the token
        return f"AftercallClient({self.base_url!r})"

    def conversation_ended(self, outcome: Dict[str, Any]) -> Dict[str, Any]:
        """Enqueues one outcome's follow-up work; returns the plan (tasks, job ids, run and expiry times)."""
        status, body = self._request("POST", "/v1/outcomes", outcome)
        if status == 202:
            return body
        raise self._error(status, body)

    def conversation_ended_batch(self, outcomes: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Up to 100 outcomes in one request; one result per outcome, in order:
        {"status": 202, "result": ...} or {"status": 400, "issues": [...]} or {"status": 503, ...}."""
        status, body = self._request("POST", "/v1/outcomes", outcomes)
        if status == 207:
            return list(body["results"])
        raise self._error(status, body)

    def conversation_tasks(self, conversation_id: str) -> List[Dict[str, Any]]:
        """The state of each task of a conversation (needs a token with the read role)."""
        path = f"/v1/conversations/{urllib.parse.quote(conversation_id, safe='')}/tasks"
        status, body = self._request("GET", path)
        if status == 200:
            return body
        raise self._error(status, body)

    # -- internals ---------------------------------------------------------------------

    def _error(self, status: int, body: Any) -> AftercallError:
        if status == 400 and isinstance(body, dict) and body.get("error") == "invalid_outcome":
            return OutcomeRejected(body)
        error = body.get("error", "error") if isinstance(body, dict) else "error"
        message = body.get("message", "") if isinstance(body, dict) else str(body)[:200]
        if status == 503:
            return Unavailable(status, error, message, body)
        return AftercallError(status, error, message, body)

    def _request(self, method: str, path: str, payload: Any = None) -> "tuple[int, Any]":
        data = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        last: Optional[AftercallError] = None
        for attempt in range(self.retries):
            request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
            wait = min(0.2 * 2**attempt, self.max_retry_wait)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.status, _json(response.read())
            except urllib.error.HTTPError as error:
                body = _json(error.read())
                if error.code != 503:
                    return error.code, body
                last = self._error(503, body)
                wait = _retry_after(error.headers.get("Retry-After"), wait, self.max_retry_wait)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                reason = getattr(error, "reason", error)
                last = Unavailable(0, "unreachable", f"{self.base_url}: {reason}")
            if attempt + 1 < self.retries:
                time.sleep(wait)
        assert last is not None
        raise last


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")


def _retry_after(value: Optional[str], fallback: float, cap: float) -> float:
    try:
        return min(max(float(value), 0.0), cap) if value is not None else fallback
    except ValueError:
        return fallback


def _main(argv: List[str]) -> int:
    import os

    if len(argv) != 2:
        print("usage: AFTERCALL_URL=... AFTERCALL_TOKEN=... python3 aftercall_client.py OUTCOME.json", file=sys.stderr)
        return 2
    client = AftercallClient(os.environ.get("AFTERCALL_URL", "http://127.0.0.1:8080"), os.environ["AFTERCALL_TOKEN"])
    with open(argv[1], encoding="utf-8") as handle:
        outcome = json.load(handle)
    try:
        print(json.dumps(client.conversation_ended(outcome), indent=2))
        return 0
    except OutcomeRejected as rejected:
        for issue in rejected.issues:
            print(f"{issue['path']}: {issue['message']}", file=sys.stderr)
        return 1
    except AftercallError as error:
        print(str(error), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
