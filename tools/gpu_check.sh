#!/usr/bin/env bash
# Everything in the project that needs a CUDA device, in one command that fits a short lease of a GPU machine:
#   1. the `gpu`-flagged tests (fp16/bf16 rollouts and training, the sync-free denoising loop, CUDA scheduler steps,
#      FSDP2 training with bf16 mixed precision and its resume);
#   2. bench/sd15.py: SD 1.5 shapes at 512 px (samples/s, peak memory; rollout vs diffusers' img2img);
#   3. bench/sdxl.py: SDXL shapes at 1024 px (LoRA fp16/bf16 at train batch 1 and 4, full bf16; rollout vs
#      diffusers' SDXL img2img); its JSON is rewritten after every configuration, so a time limit keeps the rows so far;
#   4. bench/sd3.py: SD3.5-medium shapes (PPO and NFT with Flow-GRPO's SDE, LoRA and full bf16; rollout vs diffusers'
#      SD3 img2img), rewritten after every configuration like step 3;
#   5. bench/flux.py: FLUX.1 [dev] shapes (12B, with T5-XXL) at 512 and 1024 px, LoRA bf16 PPO and NFT (full fine-tuning
#      is reported as not fitting one card); rollout vs diffusers' FLUX img2img; rewritten after every configuration;
#   6. bench/flux_kontext.py: FLUX.1 Kontext [dev] shapes (the reference's tokens double the sequence) at 1024 px from pure
#      noise, LoRA bf16 PPO and NFT with and without gradient checkpointing; rollout vs diffusers' FluxKontextPipeline;
#   6b. bench/qwen_image_edit.py: Qwen-Image-Edit shapes (20B MMDiT, Qwen2.5-VL-7B reading the reference) at 1024 px from pure
#      noise, LoRA bf16 PPO and NFT with gradient checkpointing, full fine-tuning (expected not to fit one card); rollout vs
#      diffusers' QwenImageEditPipeline;
#   7. bench/run_all.py's CUDA sections (rollout vs img2img, epoch vs floor, scaling, micro) without the
#      0.1.2 comparison (it needs a package index) and without SD 1.5 (step 2).
# Each step gets its own time limit out of BUDGET seconds, so one slow step cannot take the others' results with it.
#
#   tools/gpu_check.sh OUT_DIR [BUDGET_SECONDS]    # logs and JSON files go to OUT_DIR
# Then, on any machine: python bench/merge_cuda.py OUT_DIR   (writes bench/results/cuda.json and prints the table)
set -u
out="$(mkdir -p "${1:?usage: tools/gpu_check.sh OUT_DIR [BUDGET_SECONDS]}" && cd "$1" && pwd)"
budget="${2:-540}"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
left() { echo $(( budget - SECONDS )); }

python3 - <<'EOF' 2>&1 | tee "$out/env.txt"
import torch, diffusers, transformers, peft, accelerate
print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}, "
      f"peft {peft.__version__}, accelerate {accelerate.__version__}")
print("CUDA:", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
EOF
python3 -c "import torch; assert torch.cuda.is_available()" || { echo "no CUDA device: nothing to do" >&2; exit 1; }

echo "== 1. gpu tests ($(left) s left)"
timeout 240 python3 -m pytest -q -s -m gpu -p no:cacheprovider -o addopts= \
    tests/test_pipeline_parity.py tests/test_scheduler_parity.py tests/test_trainer_gpu.py tests/test_families.py tests/test_sharding.py 2>&1 | tee "$out/gpu_tests.log"

echo "== 2. SD 1.5 shapes ($(left) s left)"
timeout $(( $(left) * 2 / 5 )) python3 bench/sd15.py --out "$out/sd15.json" 2>&1 | tee "$out/sd15.log"

echo "== 3. SDXL shapes ($(left) s left)"
timeout $(( ($(left) - 120) / 2 )) python3 bench/sdxl.py --out "$out/sdxl.json" 2>&1 | tee "$out/sdxl.log"

echo "== 4. SD3.5-medium shapes ($(left) s left)"
timeout $(( ($(left) - 120) / 2 )) python3 bench/sd3.py --out "$out/sd3.json" 2>&1 | tee "$out/sd3.log"

echo "== 5. FLUX.1 [dev] shapes ($(left) s left)"
timeout $(( ($(left) - 120) / 2 )) python3 bench/flux.py --out "$out/flux.json" 2>&1 | tee "$out/flux.log"

echo "== 6. FLUX.1 Kontext [dev] shapes ($(left) s left)"
timeout $(( ($(left) - 120) / 2 )) python3 bench/flux_kontext.py --out "$out/flux_kontext.json" 2>&1 | tee "$out/flux_kontext.log"

echo "== 6b. Qwen-Image-Edit shapes ($(left) s left)"
timeout $(( $(left) - 120 )) python3 bench/qwen_image_edit.py --out "$out/qwen_image_edit.json" 2>&1 | tee "$out/qwen_image_edit.log"

echo "== 7. run_all CUDA sections ($(left) s left)"
timeout $(( $(left) - 10 )) python3 bench/run_all.py --skip-original --skip-sd15 --out "$out/run_all.json" 2>&1 \
    | tee "$out/run_all.log"
echo "== done in ${SECONDS} s"
