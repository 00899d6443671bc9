"""Small HTTP clients: the authorization API and the issuer's task API.

``AuthorizationClient`` asks a Mandate server (``mandate serve``) to decide,
using only the standard library (``urllib``). ``IssuerClient`` (opening a
task, refreshing its mandate, closing it) is the native client that ``mandate
task`` uses, re-exported here: it signs the actor token and the proofs of
possession in Rust and raises ``IssuerError`` subclasses (``TaskAuthError``,
``TaskClosedError``) with the issuer's ``status`` and ``code``. Neither
decides anything. Tokens are sent, never logged; errors name the URL and the
server's message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Union

from mandate._native import Issued, IssuerClient, MandateError, Token

__all__ = ["AuthorizationClient", "ApiError", "RemoteDecision", "IssuerClient", "Issued"]

AttrValue = Union[int, str]
TokenLike = Union[Token, str]

#: Longest response body read from a server.
MAX_RESPONSE_BYTES = 1 << 20


class ApiError(MandateError):
    """A Mandate HTTP API refused a request or could not be reached."""

    def __init__(self, message: str, status: Optional[int] = None, code: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class RemoteDecision:
    """A decision as ``POST /v1/authorize`` answers it."""

    allowed: bool
    principal: str
    agent: str
    chain: List[str]
    task: str
    reason: str
    reason_kind: str
    token_id: str
    failed_checks: List[Dict[str, Any]] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False)

    def __bool__(self) -> bool:
        return self.allowed


def _text(token: TokenLike) -> str:
    return token.text if isinstance(token, Token) else token


def _post(url: str, body: Mapping[str, Any], timeout: float):
    """POSTs JSON; returns (status, parsed body). 4xx with a JSON body is returned, not raised."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read(MAX_RESPONSE_BYTES) or b"{}")
    except urllib.error.HTTPError as error:
        raw = error.read(MAX_RESPONSE_BYTES)
        try:
            return error.code, json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(f"{url} answered {error.code} without a JSON body", error.code) from None
    except (urllib.error.URLError, OSError) as error:
        raise ApiError(f"cannot reach {url}: {error}") from None
    except ValueError:
        raise ApiError(f"{url} answered with a body that is not JSON") from None


def _error(url: str, status: int, body: Mapping[str, Any]) -> ApiError:
    detail = body.get("error", {}) if isinstance(body, Mapping) else {}
    message = detail.get("message", "no message")
    return ApiError(f"{url} refused ({status}): {message}", status, detail.get("code"))


class AuthorizationClient:
    """A client of ``POST /v1/authorize`` (``mandate serve``)."""

    def __init__(self, base_url: str, timeout: float = 5.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"AuthorizationClient({self.base_url!r})"

    def authorize(
        self,
        token: TokenLike,
        service: str,
        operation: str,
        resource: str,
        attrs: Optional[Mapping[str, AttrValue]] = None,
        *,
        pop: Optional[str] = None,
    ) -> RemoteDecision:
        """Asks the server to decide one request. A denial (403) is a decision,
        not an error; a token that cannot be judged (401) or a bad request raises
        ``ApiError``."""
        url = f"{self.base_url}/v1/authorize"
        body: Dict[str, Any] = {
            "token": _text(token),
            "service": service,
            "operation": operation,
            "resource": resource,
            "attrs": dict(attrs or {}),
        }
        if pop is not None:
            body["pop"] = pop
        status, answer = _post(url, body, self.timeout)
        if status in (200, 403) and isinstance(answer, dict) and "decision" in answer:
            return RemoteDecision(
                allowed=answer["decision"] == "allow",
                principal=answer.get("principal", ""),
                agent=answer.get("agent", ""),
                chain=list(answer.get("chain", [])),
                task=answer.get("task", ""),
                reason=answer.get("reason", ""),
                reason_kind=answer.get("reason_kind", ""),
                token_id=answer.get("token_id", ""),
                failed_checks=list(answer.get("failed_checks", [])),
                raw=answer,
            )
        raise _error(url, status, answer)
