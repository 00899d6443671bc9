"""Attach a mandate and a fresh proof of possession to MCP tool calls.

For the official MCP Python SDK (``pip install mcp``): wrap a connected
``mcp.ClientSession`` in ``MandateSession`` and call tools through it. Each
call carries ``_meta["mandate/token"]`` and ``_meta["mandate/pop"]``, the
fields a Mandate-guarded server (the Rust crate ``mandate-mcp``) reads. The
proof signs service (the server's name), operation (the tool), and the
resource and attributes the server maps the arguments to, so the caller
names them for each call.

``credentials_meta`` builds the same ``_meta`` for any other client, and
``credentials_argument`` the reserved ``_mandate`` argument for clients that
cannot set ``_meta``.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Union

from mandate._native import SecretKey, Token

__all__ = [
    "META_TOKEN",
    "META_POP",
    "RESERVED_ARGUMENT",
    "DENIED_CODE",
    "credentials_meta",
    "credentials_argument",
    "MandateSession",
]

META_TOKEN = "mandate/token"
META_POP = "mandate/pop"
RESERVED_ARGUMENT = "_mandate"
#: The JSON-RPC error code of a refused call.
DENIED_CODE = -32001

AttrValue = Union[int, str]


def credentials_meta(
    token: Token,
    key: SecretKey,
    service: str,
    tool: str,
    resource: str,
    attrs: Optional[Mapping[str, AttrValue]] = None,
) -> Dict[str, str]:
    """``_meta`` entries for one call: the token and a fresh proof by ``key``."""
    proof = token.prove(key, service, tool, resource, dict(attrs) if attrs else None)
    return {META_TOKEN: token.text, META_POP: proof}


def credentials_argument(
    token: Token,
    key: SecretKey,
    service: str,
    tool: str,
    resource: str,
    attrs: Optional[Mapping[str, AttrValue]] = None,
) -> Dict[str, Dict[str, str]]:
    """The reserved ``_mandate`` argument, for clients that cannot set ``_meta``."""
    meta = credentials_meta(token, key, service, tool, resource, attrs)
    return {RESERVED_ARGUMENT: {"token": meta[META_TOKEN], "pop": meta[META_POP]}}


class MandateSession:
    """An ``mcp.ClientSession`` whose tool calls carry a mandate.

    ``service`` is the guarded server's name (the service the mandate grants
    rights on). The token and key can be swapped with ``use`` (after a
    refresh, or to act as a sub-agent).
    """

    def __init__(self, session: Any, token: Token, key: SecretKey, service: str):
        self.session = session
        self.token = token
        self.key = key
        self.service = service

    def __repr__(self) -> str:
        return f"MandateSession(service={self.service!r}, token={self.token!r})"

    def use(self, token: Token, key: SecretKey) -> "MandateSession":
        """The same connection, acting with another mandate and key."""
        return MandateSession(self.session, token, key, self.service)

    async def call_tool(
        self,
        name: str,
        arguments: Optional[Dict[str, Any]] = None,
        *,
        resource: str,
        attrs: Optional[Mapping[str, AttrValue]] = None,
        **kwargs: Any,
    ) -> Any:
        """Calls ``name`` with a fresh proof for ``resource`` and ``attrs``.

        A refused call raises the SDK's ``McpError`` with code ``DENIED_CODE``;
        its message names the failing check, its block and the agent that
        wrote it.
        """
        meta = credentials_meta(self.token, self.key, self.service, name, resource, attrs)
        return await self.session.call_tool(name, arguments or {}, meta=meta, **kwargs)
