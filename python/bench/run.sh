#!/usr/bin/env bash
# Python vs Rust for the same calls, and what the MCP guard adds, in one run.
# Needs the package installed in release mode in the active Python
# (`pip install ./python` or `maturin develop --release`) and the `mcp` SDK.
# BENCH_CPU=N pins both timed processes (and the MCP servers they start) to
# core N with `taskset`, for steadier figures on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-python3}
pin=()
if [ -n "${BENCH_CPU:-}" ]; then
    pin=(taskset -c "$BENCH_CPU")
fi
cargo build --locked --release -q -p mandate-mcp --example analytics_mcp
cargo bench --locked -q -p mandate-python --bench calls --no-run 2>/dev/null
server="${CARGO_TARGET_DIR:-target}/release/examples/analytics_mcp"
rust=$("${pin[@]}" cargo bench --locked -q -p mandate-python --bench calls 2>/dev/null | tail -1)
py=$("${pin[@]}" "$python" python/bench/bench.py --mcp "$server")
"$python" - "$rust" "$py" <<'PY'
import json, sys
rust, py = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{'call':<18}{'rust µs':>10}{'python µs':>12}{'ratio':>8}")
for key in ("delegate_us", "pop_us", "pop_authorize_us"):
    print(f"{key[:-3]:<18}{rust[key]:>10.1f}{py[key]:>12.1f}{py[key] / rust[key]:>8.2f}")
print(f"MCP tool call over stdio: unguarded {py['mcp_unguarded_us']:.0f} µs, "
      f"guarded {py['mcp_guarded_us']:.0f} µs, added {py['mcp_added_us']:.0f} µs "
      "(client proof + server check); "
      f"guarded with a durable audit trail {py['mcp_guarded_audited_us']:.0f} µs")
PY
