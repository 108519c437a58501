#!/bin/sh
# make demo: what rosa does today with the shipped model (stories260K).
# Fine-tuning and evaluation join this script as their issues land.
set -e
ROSA=$1
SHARED=$2
MODEL=$SHARED/models/stories260K
echo "== rosa info"
$ROSA info --model "$MODEL"
echo
echo "== rosa generate (greedy, from BOS)"
$ROSA generate --model "$MODEL" --max-new-tokens 200
echo
echo "== rosa generate (sampled: temperature 0.8, top-p 0.9, seed 7)"
$ROSA generate --model "$MODEL" --prompt "Once upon a time" --temperature 0.8 --top-p 0.9 --seed 7 --max-new-tokens 120
