"""Merge what `tools/gpu_check.sh OUT_DIR` measured into bench/results/cuda.json and print the table.

    python bench/merge_cuda.py OUT_DIR [--out bench/results/cuda.json]

OUT_DIR's run_all.json (sections 1-3 and 7 on CUDA) is the base; sd15.json, sdxl.json, sd3.json, flux.json, flux_kontext.json and qwen_image_edit.json
become its "sd15", "sdxl", "sd3", "flux", "flux_kontext" and "qwen_image_edit" sections (a partial sdxl.json, cut short by the time limit, keeps its rows and says so); the goals are recomputed.
"""
import argparse, json
from pathlib import Path

from run_all import goals, table

HERE = Path(__file__).resolve().parent

def merge(out_dir:Path) -> dict:
    "One result from the JSON files in `out_dir`; a missing file is recorded as not run."
    read = lambda name: json.loads((out_dir / name).read_text()) if (out_dir / name).is_file() else None
    result = read("run_all.json")
    if result is None: raise SystemExit(f"{out_dir}/run_all.json is missing: the CUDA sections did not finish")
    for key in ("sd15", "sdxl", "sd3", "flux", "flux_kontext", "qwen_image_edit"):
        section = read(f"{key}.json")
        if section is not None: result[key] = {k: v for k, v in section.items() if k != "machine"}
    result["goals"] = goals(result)
    return result

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--out", type=Path, default=HERE / "results" / "cuda.json")
    a = p.parse_args()
    result = merge(a.out_dir)
    print(table(result))
    a.out.write_text(json.dumps(result, indent=1)); print(f"\nwrote {a.out}")

if __name__ == "__main__": main()
