#!/bin/sh
# README's "what fits where" table: the memory plans `rosa info` prints for header-only
# checkpoints (tools/make_random_model.py --headers-only, BF16) with the exact configs of
# real models (bench/configs).  No tensor data is written or read.
#
#   tools/fits_table.sh [ROSA_BIN] [CONFIG...]
set -e
ROSA=${1:-build/rosa}
[ $# -gt 0 ] && shift
CONFIGS=${*:-"smollm2-135m qwen2.5-0.5b llama-3.2-1b llama-3.2-3b llama-2-7b qwen2.5-7b llama-3.1-8b"}
PYTHON=${PYTHON:-/usr/bin/python3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "| model (exact config, BF16 checkpoint) | parameters | checkpoint | train fp32 | train bf16 | train int8 | generate fp32 | generate bf16 | generate int8 |"
echo "|---|---|---|---|---|---|---|---|---|"
for c in $CONFIGS; do
    "$PYTHON" tools/make_random_model.py --config "bench/configs/$c.json" --out "$TMP/$c" --headers-only
    "$ROSA" info --model "$TMP/$c" --json 2>/dev/null | "$PYTHON" -c '
import json, sys
j = json.load(sys.stdin)
g = lambda b: "%.1f GiB" % (b / 2**30)
p = j["plans"]
print("| %s | %.2f B | %s | %s | %s |" % (sys.argv[1], j["parameters"] / 1e9, g(j["weight_bytes"]),
      " | ".join(g(p["train"][k]["total_bytes"]) for k in ("fp32", "bf16", "int8")),
      " | ".join(g(p["generate"][k]["total_bytes"]) for k in ("fp32", "bf16", "int8"))))' "$c"
done
