"""The small measurements behind the trainer's speed choices, each against its alternative in one process:

- the optimiser step: torch's fused AdamW (the trainer's) vs the per-tensor loop, on the pocket and mid LoRAs;
- where the weights are: `policy.device` (first parameter) vs diffusers' `ModelMixin.device` (walks every module);
- channels-last vs contiguous UNet weights (forward at batch 8, forward+backward at batch 4, mid model);
- what doubling the batch costs (a forward+backward at batch 8 vs 4, mid model): the original trains
  guidance-1 samples with such a doubled (unconditional, conditional) batch, so this bounds our speed-up.

    python bench/micro.py [--out micro.json]
"""
import argparse, json
from pathlib import Path

import torch
from common import machine, median_time

def run(repeats:int=15) -> dict:
    from imageddpo import I2IDDPOStableDiffusionPipeline, pocket_pipeline
    from rollout import mid_pipeline
    out = {}
    for name, build in (("pocket", pocket_pipeline), ("mid", mid_pipeline)):
        policy = I2IDDPOStableDiffusionPipeline(build())
        params = policy.trainable_parameters()
        for p in params: p.grad = torch.randn_like(p)
        step = {}
        for kind, kw in (("fused", {"fused": True}), ("loop", {"foreach": False})):
            optimizer = torch.optim.AdamW(params, lr=1e-4, **kw)
            step[kind] = median_time(optimizer.step, repeats)
        out[f"adamw_{name}"] = {"tensors": len(params), "fused_ms": step["fused"] * 1e3, "loop_ms": step["loop"] * 1e3,
                                "speedup": step["loop"] / step["fused"]}
        out[f"device_lookup_{name}"] = {"policy_us": median_time(lambda: policy.device, repeats) * 1e6,
                                        "diffusers_us": median_time(lambda: policy.unet.device, repeats) * 1e6}
    unet = policy.unet  # mid
    x, t, e = torch.randn(8, 4, 16, 16), torch.full((8,), 500), torch.randn(8, 77, 32)
    def forward():
        with torch.no_grad(): unet(x, t, encoder_hidden_states=e)
    def forward_backward(n):
        return lambda: unet(x[:n], t[:n], encoder_hidden_states=e[:n])[0].float().mean().backward()
    layouts = {}
    for layout in ("contiguous", "channels_last", "contiguous"):  # contiguous twice: before and after, against drift
        unet.to(memory_format=torch.channels_last if layout == "channels_last" else torch.contiguous_format)
        layouts.setdefault(layout, []).append({"forward_b8_ms": median_time(forward, repeats // 3) * 1e3,
                                               "forward_backward_b4_ms": median_time(forward_backward(4), repeats // 3) * 1e3})
    best = lambda layout, key: min(r[key] for r in layouts[layout])
    out["channels_last_mid"] = {key: {"contiguous": best("contiguous", key), "channels_last": best("channels_last", key)}
                                for key in ("forward_b8_ms", "forward_backward_b4_ms")}
    b4, b8 = median_time(forward_backward(4), repeats // 3), median_time(forward_backward(8), repeats // 3)
    out["batch_doubling_mid"] = {"forward_backward_b4_ms": b4 * 1e3, "forward_backward_b8_ms": b8 * 1e3, "cost_ratio": b8 / b4}
    return out

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=None)
    p.add_argument("--json-only", action="store_true", help="print the result as one JSON line (for run_all.py)")
    a = p.parse_args()
    if a.json_only: print(json.dumps(run())); return
    result = {"machine": machine(), **run()}
    print(json.dumps(result, indent=1))
    if a.out: Path(a.out).write_text(json.dumps(result, indent=1))

if __name__ == "__main__": main()
