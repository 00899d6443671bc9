"""Quarterly analytics, multi-hop, over MCP: Python agents on the official
`mcp` client call the Rust analytics server (crates/mandate-mcp) guarded by
Mandate.

bob's orchestrator delegates read access to the Q3 datasets to an analytics
agent, which delegates only the revenue dataset to a charting agent. Each
agent calls tools with its own mandate and a fresh proof of possession. A
call outside the charting slice is denied naming the failing check and the
hop that added it; a token used with the wrong key is refused; then an
operator revokes the task and the next call fails.

    pip install ./python mcp
    python examples/quarterly_analytics_mcp.py [--server PATH/analytics_mcp]

Without --server the example builds the server with cargo. Exits non-zero
unless every decision comes out as expected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mcp

import mandate
from mandate.mcp import MandateSession

REPO = Path(__file__).resolve().parents[1]


def build_server() -> str:
    out = subprocess.run(
        ["cargo", "build", "--locked", "-q", "--message-format=json", "-p", "mandate-mcp",
         "--example", "analytics_mcp"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("executable") and message.get("target", {}).get("name") == "analytics_mcp":
            return message["executable"]
    raise SystemExit("cargo built no analytics_mcp")


def registry_url(log: Path) -> str:
    for _ in range(1500):
        found = re.search(r"registry (http://\S+)", log.read_text())
        if found:
            return found.group(1)
        time.sleep(0.02)
    raise SystemExit("the server announced no registry")


def expect(what: str, ok: bool) -> None:
    print(f"  {'ok ' if ok else 'FAIL'} {what}")
    if not ok:
        raise SystemExit(f"unexpected outcome: {what}")


async def call(agent: MandateSession, who: str, tool: str, path: str) -> bool:
    try:
        result = await agent.call_tool(tool, {"path": path}, resource=path)
        print(f"{who}: {tool} {path} -> allowed: {result.content[0].text}")
        return True
    except mcp.MCPError as error:
        print(f"{who}: {tool} {path} -> DENIED: {error.message}")
        return False


async def scenario(server: str, workdir: Path) -> None:
    issuer = mandate.Issuer.generate(1)
    orchestrator, analytics, charting = (mandate.SecretKey.generate() for _ in range(3))
    operator_file = workdir / "operator.key"
    mandate.SecretKey.generate().write(operator_file)
    operator = mandate.SecretKey.read(operator_file)

    bob = issuer.issue(principal="bob", agent="orchestrator", agent_key=orchestrator.public_key,
                       rights=["analytics:read_dataset", "analytics:export_dataset"],
                       ttl="30m", task="q3-report")
    ops = issuer.issue(principal="ops", agent="operator", agent_key=operator.public_key,
                       rights=["registry:revoke"], ttl="30m")
    # Offline, no issuer involved: each hop signed by the delegating agent.
    for_analytics = bob.delegate(signer=orchestrator, to="analytics", to_key=analytics.public_key,
                                 operations=["read_dataset"], resource_prefixes=["/datasets/q3"])
    for_charting = for_analytics.delegate(signer=analytics, to="charting", to_key=charting.public_key,
                                          resources=["/datasets/q3/revenue"], max_depth=0)
    print("charting's chain:", " -> ".join(for_charting.inspect([issuer.root_arg])["chain"]))
    try:
        for_analytics.delegate(signer=charting, to="charting", to_key=charting.public_key)
        expect("a hop forged by an agent that does not hold the token is refused", False)
    except mandate.NotHolderError as error:
        print(f"forged hop refused offline: {error}")

    log = workdir / "server.log"
    params = mcp.StdioServerParameters(
        command=server, args=["--root-pub", issuer.root_arg, "--store", str(workdir / "store")])
    with open(log, "w") as errlog:
        async with mcp.stdio_client(params, errlog=errlog) as (read, write):
            async with mcp.ClientSession(read, write) as session:
                await session.initialize()
                orch = MandateSession(session, bob, orchestrator, "analytics")
                chart = orch.use(for_charting, charting)
                expect("orchestrator exports Q3",
                       await call(orch, "orchestrator", "export_dataset", "/datasets/q3/revenue"))
                expect("analytics reads Q3 cost",
                       await call(orch.use(for_analytics, analytics), "analytics", "read_dataset",
                                  "/datasets/q3/cost"))
                expect("charting reads Q3 revenue",
                       await call(chart, "charting", "read_dataset", "/datasets/q3/revenue"))
                expect("charting may not read Q3 cost (its slice)",
                       not await call(chart, "charting", "read_dataset", "/datasets/q3/cost"))
                expect("charting may not export",
                       not await call(chart, "charting", "export_dataset", "/datasets/q3/revenue"))
                expect("charting's token with analytics' key is refused",
                       not await call(orch.use(for_charting, analytics), "analytics (charting's token)", "read_dataset",
                                      "/datasets/q3/revenue"))
                entry = mandate.RegistryClient(registry_url(log), ops.text, operator_file).revoke(
                    "task", "q3-report", reason="kill switch")
                print(f"operator revoked task q3-report (seq {entry['seq']})")
                expect("after the revocation, charting is denied",
                       not await call(chart, "charting", "read_dataset", "/datasets/q3/revenue"))
                expect("and so is the orchestrator",
                       not await call(orch, "orchestrator", "read_dataset", "/datasets/q3/revenue"))
    print("audit trail (server):")
    for line in log.read_text().splitlines():
        if "mandate::audit" in line:
            print("  " + line.split("mandate::audit: ", 1)[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description="Quarterly analytics over MCP")
    parser.add_argument("--server", help="the analytics_mcp binary (default: build it with cargo)")
    args = parser.parse_args()
    server = args.server or build_server()
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(scenario(server, Path(workdir)))
    print("every decision came out as expected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
