"""Times the Python package's calls and, optionally, one guarded MCP tool call.

Prints one JSON object. The calls are those ``crates/mandate-python/benches/
calls.rs`` times in Rust, timed the same way (15 batches of 200 calls; the
median batch's time per call), so ``run.sh`` can print the ratios.

    python bench.py                       # delegate, pop, pop + authorize
    python bench.py --mcp PATH/analytics_mcp   # also guarded vs unguarded MCP calls
                                               # (and guarded with a durable audit trail)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path

import mandate

BATCHES = 15
PER_BATCH = 200


def median_us(call, per_batch: int = PER_BATCH) -> float:
    call()
    runs = timeit.repeat(call, number=per_batch, repeat=BATCHES)
    return statistics.median(runs) / per_batch * 1e6


def calls() -> dict:
    issuer = mandate.Issuer.generate(1)
    orchestrator = mandate.SecretKey.generate()
    analytics = mandate.SecretKey.generate()
    token = issuer.issue(principal="bob", agent="orchestrator", agent_key=orchestrator.public_key,
                         rights=["analytics:read"], ttl="1h", task="q3-report")
    child = token.delegate(signer=orchestrator, to="analytics", to_key=analytics.public_key,
                           operations=["read"], resource_prefixes=["/datasets/q3"])
    verifier = mandate.Verifier([issuer.root_arg], require_pop=True)

    def delegate():
        token.delegate(signer=orchestrator, to="analytics", to_key=analytics.public_key,
                       operations=["read"], resource_prefixes=["/datasets/q3"])

    def pop():
        child.prove(analytics, "analytics", "read", "/datasets/q3/revenue")

    def pop_authorize():
        proof = child.prove(analytics, "analytics", "read", "/datasets/q3/revenue")
        assert verifier.authorize(child, "analytics", "read", "/datasets/q3/revenue", pop=proof).allowed

    return {
        "delegate_us": round(median_us(delegate), 2),
        "pop_us": round(median_us(pop), 2),
        "pop_authorize_us": round(median_us(pop_authorize), 2),
    }


async def mcp_round_trips(server: str, calls_per_batch: int = 100) -> dict:
    import mcp
    from mandate.mcp import MandateSession

    issuer = mandate.Issuer.generate(1)
    agent_key = mandate.SecretKey.generate()
    token = issuer.issue(principal="bob", agent="orchestrator", agent_key=agent_key.public_key,
                         rights=["analytics:read_dataset"], ttl="1h")
    path = "/datasets/q3/revenue"

    async def timed(args, guarded: bool) -> float:
        params = mcp.StdioServerParameters(command=server, args=args)
        with tempfile.TemporaryFile("w") as errlog:
            async with mcp.stdio_client(params, errlog=errlog) as (read, write):
                async with mcp.ClientSession(read, write) as session:
                    await session.initialize()
                    agent = MandateSession(session, token, agent_key, "analytics")

                    async def call():
                        if guarded:
                            return await agent.call_tool("read_dataset", {"path": path}, resource=path)
                        return await session.call_tool("read_dataset", {"path": path})

                    for _ in range(20):  # warm: token cached by the verifier
                        assert not (await call()).is_error
                    batches = []
                    for _ in range(BATCHES):
                        start = time.perf_counter()
                        for _ in range(calls_per_batch):
                            await call()
                        batches.append((time.perf_counter() - start) / calls_per_batch * 1e6)
                    return statistics.median(batches)

    unguarded = await timed(["--unguarded"], guarded=False)
    guarded = await timed(["--root-pub", issuer.root_arg], guarded=True)
    # The same guard recording every decision durably in an audit trail: each
    # call then also waits for its record's flush (group commit, one fsync).
    with tempfile.TemporaryDirectory() as audit:
        audited = await timed(["--root-pub", issuer.root_arg, "--audit-store", str(Path(audit) / "audit")],
                              guarded=True)
    return {
        "mcp_unguarded_us": round(unguarded, 1),
        "mcp_guarded_us": round(guarded, 1),
        "mcp_added_us": round(guarded - unguarded, 1),
        "mcp_guarded_audited_us": round(audited, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mcp", metavar="SERVER", help="the analytics_mcp example binary (release)")
    args = parser.parse_args()
    result = calls()
    if args.mcp:
        result.update(asyncio.run(mcp_round_trips(args.mcp)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
