#!/bin/sh
# make bench: tokenizer encoding speed and a training-step throughput on the
# shipped model.  (The full suite against PyTorch is issue 6.)
set -e
BUILD=$1
SHARED=$2
TEXT=$SHARED/data/train/commonsense_mix_small.json
echo "== tokenizer encoding, one thread, English text ($TEXT)"
for t in "$SHARED/tokenizers/qwen2" "$SHARED/tokenizers/llama2" "$SHARED/models/stories260K"; do
    OMP_NUM_THREADS=1 "$BUILD/bench_tokenizer" "$t" "$TEXT"
done
echo
echo "== OpenBLAS kernel in use"
OPENBLAS_VERBOSE=2 "$BUILD/rosa" --version 2>&1 | grep -i core || echo "(not reported)"
echo
echo "== training throughput: stories260K, RoSA, 8 steps of 8 x 384 tokens"
OUT=$(mktemp -d)
"$BUILD/rosa" train --model "$SHARED/models/stories260K" --data "$SHARED/data/llm-adapters/boolq/train.json" \
    --output "$OUT" --method rosa --max-steps 8 --batch-size 8 --micro-batch-size 4 --cutoff-len 384 \
    --save-steps 0 --quiet
awk -F'"tokens_per_second": ' '/tokens_per_second/ {split($2, a, ","); s += a[1]; n++}
    END {printf "mean %.0f tokens/s over %d steps\n", s / n, n}' "$OUT/metrics.jsonl"
rm -rf "$OUT"
