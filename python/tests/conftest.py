"""Shared fixtures: keys, an issuer, and Rust binaries built with cargo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Sequence

import pytest

import mandate

REPO = Path(__file__).resolve().parents[2]
_BUILT: Dict[str, str] = {}


def cargo_example(package: str, example: str) -> str:
    """The path of a workspace example, built once per session with cargo.

    ``MANDATE_<EXAMPLE>`` in the environment (e.g. ``MANDATE_ANALYTICS_MCP``)
    names a prebuilt binary instead. Skips, saying why, when neither works.
    """
    return _cargo_target(package, "--example", example)


def cargo_bin(package: str, binary: str) -> str:
    """As ``cargo_example``, for a binary (``MANDATE_BIN_<NAME>`` overrides)."""
    return _cargo_target(package, "--bin", binary, env=f"MANDATE_BIN_{binary.upper()}")


def _cargo_target(package: str, kind: str, example: str, env: str = "") -> str:
    override = os.environ.get(env or f"MANDATE_{example.upper()}")
    if override:
        return override
    if example in _BUILT:
        return _BUILT[example]
    if shutil.which("cargo") is None:
        pytest.skip(f"cargo is not on PATH, so the {example} example cannot be built")
    result = subprocess.run(
        ["cargo", "build", "--locked", "--message-format=json", "-p", package, kind, example],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"cargo build of {example} failed:\n{result.stderr[-4000:]}")
    for line in result.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable") and message["target"]["name"] == example:
            _BUILT[example] = message["executable"]
            return message["executable"]
    pytest.fail(f"cargo built no executable for {example}")


@contextmanager
def running(args: Sequence[str], log: Path) -> Iterator[str]:
    """Runs ``mandate ARGS`` (a server on ``127.0.0.1:0``) with its stderr in
    ``log``; yields the ``http://...`` URL it announces on stdout, and
    terminates it on exit."""
    binary = cargo_bin("mandate-cli", "mandate")
    with open(log, "w") as errors:
        process = subprocess.Popen([binary, *args], stdout=subprocess.PIPE, stderr=errors, text=True)
    lines: list = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(60)
    try:
        line = lines[0] if lines else ""
        assert "http://" in line, f"mandate {args[0]} announced no address: {line!r}\n{log.read_text()}"
        yield line[line.index("http://"):].split()[0].rstrip(",")
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def issuer() -> mandate.Issuer:
    return mandate.Issuer.generate(1)


@pytest.fixture
def orchestrator() -> mandate.SecretKey:
    return mandate.SecretKey.generate()


@pytest.fixture
def analytics() -> mandate.SecretKey:
    return mandate.SecretKey.generate()


@pytest.fixture
def bob_token(issuer: mandate.Issuer, orchestrator: mandate.SecretKey) -> mandate.Token:
    return issuer.issue(
        principal="bob",
        agent="orchestrator",
        agent_key=orchestrator.public_key,
        rights=["analytics:read", "analytics:export"],
        ttl="10m",
        task="q3-report",
    )
