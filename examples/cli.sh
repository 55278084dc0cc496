#!/usr/bin/env bash
# The llm-classifier command line end to end (docs/cli.md): fit on a small CSV, inspect the
# artifact, predict a JSON Lines file, evaluate with a confusion-matrix PNG.
#
#   bash examples/cli.sh [WORKDIR]
#
# MODEL and FIT_OPTIONS choose the base model and training options; the defaults train the
# packaged SmolLM2-135M-Instruct for 30 steps (about 4 minutes on one busy CPU core here).
set -euo pipefail

WORKDIR=${1:-$(mktemp -d)}
MODEL=${MODEL:-smollm2-135m-instruct}
FIT_OPTIONS=${FIT_OPTIONS:---max-steps 30 --random-state 0}
mkdir -p "$WORKDIR" && cd "$WORKDIR"

cat > train.csv <<'CSV'
review,sentiment
"A wonderful, moving film.",positive
"Dull, long and badly acted.",negative
Great fun from start to finish.,positive
An awful waste of time.,negative
I loved every minute of it.,positive
Boring and predictable.,negative
Brilliant performances all round.,positive
The worst film this year.,negative
A warm and witty delight.,positive
Tedious and far too long.,negative
CSV

cat > new.jsonl <<'JSONL'
{"id": 1, "review": "What a wonderful, funny film."}
{"id": 2, "review": "Two hours I will never get back."}
{"id": 3, "review": "Moving, warm and beautifully acted."}
JSONL

cat > test.csv <<'CSV'
review,sentiment
A delight from beginning to end.,positive
Badly written and boring.,negative
Funny and moving.,positive
An awful film.,negative
CSV

# shellcheck disable=SC2086  # FIT_OPTIONS is a list of options
llm-classifier fit train.csv --text-column review --label-column sentiment \
    --model "$MODEL" $FIT_OPTIONS --out sentiment-clf

llm-classifier info sentiment-clf

llm-classifier predict sentiment-clf new.jsonl --text-column review --keep-columns id \
    --output predictions.csv
cat predictions.csv

llm-classifier evaluate sentiment-clf test.csv --text-column review --label-column sentiment \
    --confusion-png confusion.png
echo "Wrote $WORKDIR/predictions.csv and $WORKDIR/confusion.png"
