"""The Python MCP example runs and every decision comes out as expected."""

import subprocess
import sys

import pytest

from conftest import REPO, cargo_example

pytest.importorskip("mcp", reason="the official MCP SDK (pip install mcp) is not installed")


def test_quarterly_analytics_over_mcp():
    server = cargo_example("mandate-mcp", "analytics_mcp")
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "quarterly_analytics_mcp.py"), "--server", server],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every decision came out as expected" in result.stdout
    assert "block 2 (by agent analytics)" in result.stdout
    assert "chain=orchestrator -> analytics -> charting" in result.stdout
