"""End to end with the real SDKs: a Python agent on the official ``mcp``
client calls the Rust analytics server (``rmcp``) guarded by Mandate, over
stdio; it hands a narrower mandate to a sub-agent; an operator revokes the
task through the server's registry and the next call fails.

Skips, saying why, when the ``mcp`` package is not installed or cargo cannot
build the server.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

import mandate
from mandate.mcp import DENIED_CODE, MandateSession, credentials_argument

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (pip install mcp) is not installed")

from conftest import cargo_example  # noqa: E402


def registry_url(errlog: Path, deadline: float = 30.0) -> str:
    """The registry address the server announces on stderr."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        found = re.search(r"registry (http://\S+)", errlog.read_text())
        if found:
            return found.group(1)
        time.sleep(0.02)
    raise AssertionError(f"the server announced no registry: {errlog.read_text()!r}")


async def scenario(server: str, tmp: Path) -> dict:
    issuer = mandate.Issuer.generate(1)
    orchestrator = mandate.SecretKey.generate()
    analytics = mandate.SecretKey.generate()
    operator_key = tmp / "operator.key"
    mandate.SecretKey.generate().write(operator_key)
    operator = mandate.SecretKey.read(operator_key)

    bob = issuer.issue(
        principal="bob",
        agent="orchestrator",
        agent_key=orchestrator.public_key,
        rights=["analytics:read_dataset", "analytics:export_dataset"],
        ttl="10m",
        task="q3-report",
    )
    ops = issuer.issue(
        principal="ops",
        agent="operator",
        agent_key=operator.public_key,
        rights=["registry:revoke"],
        ttl="10m",
    )
    params = mcp.StdioServerParameters(
        command=server, args=["--root-pub", issuer.root_arg, "--store", str(tmp / "store")]
    )
    errlog_path = tmp / "server.log"
    outcome: dict = {}
    with open(errlog_path, "w") as errlog:
        async with mcp.stdio_client(params, errlog=errlog) as (read, write):
            async with mcp.ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                outcome["tools"] = sorted(t.name for t in tools.tools)

                # The orchestrator, on bob's mandate.
                agent = MandateSession(session, bob, orchestrator, "analytics")
                result = await agent.call_tool("export_dataset", {"path": "/datasets/q3/revenue"},
                                               resource="/datasets/q3/revenue")
                outcome["orchestrator_export"] = (result.is_error, result.content[0].text)

                # No mandate at all.
                try:
                    await session.call_tool("read_dataset", {"path": "/datasets/q3/revenue"})
                except mcp.MCPError as error:
                    outcome["no_mandate"] = (error.code, error.message)

                # A narrower, signed hop to the analytics sub-agent.
                child = bob.delegate(signer=orchestrator, to="analytics", to_key=analytics.public_key,
                                     operations=["read_dataset"], resource_prefixes=["/datasets/q3"])
                sub = agent.use(child, analytics)
                result = await sub.call_tool("read_dataset", {"path": "/datasets/q3/revenue"},
                                             resource="/datasets/q3/revenue")
                outcome["sub_read"] = (result.is_error, result.content[0].text)

                # The reserved argument, for clients that cannot set _meta.
                arguments = {"path": "/datasets/q3/cost",
                             **credentials_argument(child, analytics, "analytics", "read_dataset",
                                                    "/datasets/q3/cost")}
                result = await session.call_tool("read_dataset", arguments)
                outcome["sub_read_reserved"] = result.content[0].text

                for tool, path in (("export_dataset", "/datasets/q3/revenue"),
                                   ("read_dataset", "/datasets/q4/revenue")):
                    try:
                        await sub.call_tool(tool, {"path": path}, resource=path)
                    except mcp.MCPError as error:
                        outcome[f"sub_{tool}_{path}"] = (error.code, error.message, error.data)

                # The sub-agent's key with the parent token: not the holder.
                try:
                    await agent.use(bob, analytics).call_tool(
                        "read_dataset", {"path": "/datasets/q3/revenue"}, resource="/datasets/q3/revenue")
                except mcp.MCPError as error:
                    outcome["wrong_key"] = error.data["kind"]

                # The operator revokes the task; the next call fails.
                registry = mandate.RegistryClient(registry_url(errlog_path), ops.text, operator_key)
                entry = registry.revoke("task", "q3-report", reason="kill switch")
                outcome["revoked_seq"] = entry["seq"]
                try:
                    await sub.call_tool("read_dataset", {"path": "/datasets/q3/revenue"},
                                        resource="/datasets/q3/revenue")
                except mcp.MCPError as error:
                    outcome["after_revoke"] = (error.data["kind"], error.message)
    outcome["secrets"] = [bob.text, child.text, ops.text]
    outcome["log"] = errlog_path.read_text()
    outcome["audit"] = [line for line in errlog_path.read_text().splitlines() if "mandate::audit" in line]
    return outcome


def test_guarded_mcp_server_end_to_end(tmp_path):
    server = cargo_example("mandate-mcp", "analytics_mcp")
    outcome = asyncio.run(scenario(server, tmp_path))

    assert outcome["tools"] == ["export_dataset", "read_dataset"]
    assert outcome["orchestrator_export"] == (False, "export of /datasets/q3/revenue: 2 rows")
    code, message = outcome["no_mandate"]
    assert code == DENIED_CODE and "mandate/token" in message
    assert outcome["sub_read"][0] is False
    assert outcome["sub_read_reserved"] == "rows of /datasets/q3/cost: revenue 1200, cost 800"

    code, message, data = outcome["sub_export_dataset_/datasets/q3/revenue"]
    assert code == DENIED_CODE
    # The failing check, its block and the hop (the agent who wrote it).
    assert "block 1 (by agent orchestrator)" in message, message
    assert "chain orchestrator -> analytics" in message
    assert data["kind"] == "failed_checks"
    assert data["decision"]["chain"] == ["orchestrator", "analytics"]
    assert data["decision"]["principal"] == "bob"

    code, message, data = outcome["sub_read_dataset_/datasets/q4/revenue"]
    assert "block 1 (by agent orchestrator)" in message and "/datasets/q3" in message

    assert outcome["wrong_key"] == "proof_of_possession"
    assert outcome["revoked_seq"] == 1
    kind, message = outcome["after_revoke"]
    assert kind == "revoked" and "q3-report" in message

    # The audit trail names the chain of every decision, allowed or denied.
    audit = outcome["audit"]
    assert any("allowed=true" in line and 'chain=orchestrator -> analytics' in line for line in audit), audit
    assert any("allowed=false" in line and "revoked" in line for line in audit), audit
    assert not any(secret in outcome["log"] for secret in outcome["secrets"])
