"""The pocket benchmark's quality bars, measured on the shipped weights (issue: pocket model).

    python bench/pocket_quality.py [--out bench/results/pocket_quality.json]

Text-to-image class accuracy, class kept by img2img on clean held-out digits, accuracy on the corrupted
task inputs, plain img2img on them at several strengths, and load / sampling times (medians of 5).
"""
import argparse, json, statistics, time

import torch

from imageddpo.digits import classifier_accuracy, corrupt, digits_dataset, pocket_classifier
from imageddpo.pipeline import I2IDDPOStableDiffusionPipeline
from imageddpo.pocket import pocket_pipeline
from imageddpo.pocket_training import digit_prompt

def accuracy(classifier, images, labels) -> float: return classifier_accuracy(images, labels, classifier)

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    load_s = statistics.median(timed(pocket_pipeline) for _ in range(5))
    pipe, classifier = pocket_pipeline(), pocket_classifier()
    policy = I2IDDPOStableDiffusionPipeline(pipe, use_lora=False)
    images, labels = digits_dataset("heldout")
    r = dict(classifier_heldout_accuracy=accuracy(classifier, images, labels), load_seconds=load_s)
    wanted = torch.arange(10).repeat(20)
    t2i = pipe([digit_prompt(int(d)) for d in wanted], num_inference_steps=20, guidance_scale=3.0, height=32, width=32,
               output_type="pt", generator=torch.Generator().manual_seed(0)).images
    r["t2i_accuracy_g3_20steps_200_samples"] = accuracy(classifier, t2i, wanted)
    r["t2i_16_images_seconds"] = statistics.median(timed(lambda: pipe([""] * 16, num_inference_steps=20, guidance_scale=3.0,
                                                                        height=32, width=32, output_type="pt")) for _ in range(5))
    clean = policy.rollout(images, "", noise_strength=0.3, num_inference_steps=20, generator=torch.Generator().manual_seed(0))
    r["img2img_s0.3_clean_class_kept"] = accuracy(classifier, clean.images, labels)
    corrupted = corrupt(images, severity=1.0, seed=0)
    r["corrupted_accuracy_severity1"] = accuracy(classifier, corrupted, labels)
    for s in (0.2, 0.3, 0.5, 0.7):
        out = policy.rollout(corrupted, "", noise_strength=s, num_inference_steps=20, generator=torch.Generator().manual_seed(0))
        r[f"plain_img2img_s{s}_on_corrupted_accuracy"] = accuracy(classifier, out.images, labels)
    for k, v in r.items(): print(f"{k:>45}: {v:.4f}")
    if args.out:
        with open(args.out, "w") as f: json.dump(r, f, indent=1)
        print("wrote", args.out)

def timed(fn) -> float:
    start = time.perf_counter(); fn(); return time.perf_counter() - start

if __name__ == "__main__": main()
