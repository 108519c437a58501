#!/bin/sh
# make demo: fine-tune the shipped model (stories260K) with RoSA on part of the
# boolq training set, and show what changed.
set -e
ROSA=$1
SHARED=$2
MODEL=$SHARED/models/stories260K
TRAIN=$SHARED/data/llm-adapters/boolq/train.json
TEST=$SHARED/data/llm-adapters/boolq/test.json
OUT=build/demo-rosa

echo "== the model"
$ROSA info --model "$MODEL"
echo
echo "== held-out loss before fine-tuning (first 200 boolq test records)"
$ROSA loss --model "$MODEL" --data "$TEST" --cutoff-len 384 --limit 200
echo
echo "== fine-tuning with RoSA (RoAE + DLS): 60 steps of 16 examples, boolq train, cutoff 384"
$ROSA train --model "$MODEL" --data "$TRAIN" --output "$OUT" --overwrite \
    --method rosa --rank 16 --r-low 0.5 --alpha 1 --lr 5e-3 --warmup-steps 6 \
    --batch-size 16 --micro-batch-size 4 --max-steps 60 --cutoff-len 384 \
    --dls-interval 10 --dls-warmup 10 --val-set-size 64 --eval-steps 20 --save-steps 30
echo
echo "== held-out loss after fine-tuning"
$ROSA loss --model "$MODEL" --adapter "$OUT" --data "$TEST" --cutoff-len 384 --limit 200
echo
echo "== boolq accuracy before and after, first 200 test items"
echo "   (log-likelihood mode: the likelier of 'the correct answer is true/false'; generation with"
echo "    beam search is the paper's protocol, but this 260K-parameter model does not answer in words)"
$ROSA eval --model "$MODEL" --tasks boolq --limit 200 --mode loglik --quiet --output "$OUT/eval-base.json" | grep '^boolq'
$ROSA eval --model "$MODEL" --adapter "$OUT" --tasks boolq --limit 200 --mode loglik --quiet --output "$OUT/eval.json" | grep '^boolq'
echo
echo "== the layers DLS selected (metrics in $OUT/metrics.jsonl)"
grep '"dls_selection"' "$OUT/metrics.jsonl" || true
echo
echo "== the adapter is in $OUT (PEFT-style adapter_config.json + adapter_model.safetensors)"
ls -l "$OUT"
echo
echo "== the run report: loss, learning rate, gradient norm, tokens/s, DLS heatmap, configuration, evaluation"
$ROSA report "$OUT"
