"""End to end with the real SDKs: a Python agent on the official ``mcp``
client calls the Rust analytics server (``rmcp``) guarded by Mandate, over
stdio; it hands a narrower mandate to a sub-agent; an operator revokes the
task through the server's registry and the next call fails. The server
records every decision in its audit trail, read back afterwards with
``mandate audit --store DIR --json`` and checked with ``mandate audit verify``.

Skips, saying why, when the ``mcp`` package is not installed or cargo cannot
build the server.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

import mandate
from mandate.mcp import DENIED_CODE, MandateSession, credentials_argument

mcp = pytest.importorskip("mcp", reason="the official MCP SDK (pip install mcp) is not installed")

from conftest import cargo_bin, cargo_example  # noqa: E402


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
        command=server,
        args=["--root-pub", issuer.root_arg, "--store", str(tmp / "store"),
              "--audit-store", str(tmp / "audit")],
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
    outcome["keys"] = {name: mandate.fingerprint(str(key.public_key))
                       for name, key in (("orchestrator", orchestrator), ("analytics", analytics))}
    outcome["log"] = errlog_path.read_text()
    outcome["audit"] = [line for line in errlog_path.read_text().splitlines() if "mandate::audit" in line]
    return outcome


def audit_trail(tmp: Path) -> tuple:
    """The server's audit trail as JSON records, and `audit verify`'s exit code
    (the server has stopped: its store is free)."""
    binary = cargo_bin("mandate-cli", "mandate")
    read = subprocess.run([binary, "audit", "--store", str(tmp / "audit"), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert read.returncode == 0, read.stderr
    verify = subprocess.run([binary, "audit", "verify", "--store", str(tmp / "audit")],
                            capture_output=True, text=True, timeout=60)
    return [json.loads(line) for line in read.stdout.splitlines() if line.strip()], verify.returncode, read.stdout


def test_guarded_mcp_server_end_to_end(tmp_path):
    server = cargo_example("mandate-mcp", "analytics_mcp")
    outcome = asyncio.run(scenario(server, tmp_path))
    records, verified, trail_text = audit_trail(tmp_path)

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

    # The durable trail: every decision in order, naming the principal, the
    # whole chain with each agent's key fingerprint, the tool and the outcome.
    assert verified == 0, "mandate audit verify found the trail tampered"
    keys = outcome["keys"]
    decisions = [r for r in records if r["event"] == "decision"]
    assert all(r["principal"] == "bob" and r["task"] == "q3-report" and r["service"] == "analytics"
               and r["api"] == "mcp" for r in decisions), decisions
    summary = [(r["operation"], r["resource"], [link["name"] for link in r["chain"]], r["decision"],
                r["reason"]["kind"]) for r in decisions]
    orchestrator = ["orchestrator"]
    sub_chain = ["orchestrator", "analytics"]
    assert summary == [
        ("export_dataset", "/datasets/q3/revenue", orchestrator, "allow", "allowed"),
        ("read_dataset", "/datasets/q3/revenue", sub_chain, "allow", "allowed"),
        ("read_dataset", "/datasets/q3/cost", sub_chain, "allow", "allowed"),
        ("export_dataset", "/datasets/q3/revenue", sub_chain, "deny", "failed_checks"),
        ("read_dataset", "/datasets/q4/revenue", sub_chain, "deny", "failed_checks"),
        ("read_dataset", "/datasets/q3/revenue", orchestrator, "deny", "proof_of_possession"),
        ("read_dataset", "/datasets/q3/revenue", sub_chain, "deny", "revoked"),
    ], summary
    for record in decisions:
        assert [link["key"] for link in record["chain"]] == [keys[link["name"]] for link in record["chain"]]
        assert record["agent"] == record["chain"][-1]["name"]
    denied = decisions[3]
    assert denied["reason"]["checks"][0]["author"] == "agent orchestrator", denied["reason"]
    assert decisions[-1]["reason"]["value"] == "q3-report"
    # The call without a mandate is a refusal; the revocation is in the trail
    # before the decision it caused.
    refusals = [r for r in records if r["event"] == "refusal"]
    assert [(r["code"], r["operation"]) for r in refusals] == [("missing_mandate", "read_dataset")]
    revocations = [r for r in records if r["event"] == "registry"]
    assert [(r["kind"], r["value"]) for r in revocations] == [("task", "q3-report")], revocations
    assert revocations[0]["seq"] < decisions[-1]["seq"]
    assert not any(secret in trail_text for secret in outcome["secrets"])

    # The log lines name the chain of every decision, allowed or denied.
    audit = outcome["audit"]
    assert any("allowed=true" in line and 'chain=orchestrator -> analytics' in line for line in audit), audit
    assert any("allowed=false" in line and "revoked" in line for line in audit), audit
    assert not any(secret in outcome["log"] for secret in outcome["secrets"])
