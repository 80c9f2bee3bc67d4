#!/usr/bin/env python3
"""Write tests/data/model2vec-reference.json: reference embeddings computed by the
Python model2vec library (StaticModel.from_pretrained(dir).encode(texts)), for
checking engram's Rust Model2Vec loader against the library it reimplements.

Usage (from the engram repository root):
  ~/.cache/engram/m2v-venv/bin/python scripts/model2vec/make_reference.py \
      --model models/minilm-m2v-128 --output tests/data/model2vec-reference.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import metadata
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent

LONG_SENTENCE = (
    "In the quiet hours before dawn, the old lighthouse keeper climbed the spiral stairs once more, "
    "carrying a brass lantern, a notebook full of weather observations, and a thermos of bitter coffee, "
    "because the automated beacon had failed twice that week and the fishing boats returning from the "
    "northern banks still depended on a steady light to find the narrow channel between the rocks."
)

# Enough distinct words to exceed the 512-token truncation limit.
_WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliett kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu"
).split()
TRUNCATION_TEXT = " ".join(f"{w}{i}" for i in range(40) for w in _WORDS[:16])

# Longer than max_length * median_token_length (512 * 6 = 3072) characters but
# fewer than 512 tokens, so the character cut in encode() is what bites; the
# partial word at the cut is kept.
CHAR_CUT_TEXT = "internationalization " * 150 + "zebra giraffe elephant"

# Words of more than 100 characters are one [UNK] each (WordPiece
# max_input_chars_per_word), which encode() drops. "dog" sits at character
# ~1936 (byte ~3872 in UTF-8); the character cut at 3072 falls inside a
# 2000-character word (still > 100 characters, so still one [UNK]) and drops
# "cat". Cutting by characters keeps only "dog" (result == embedding of "dog");
# cutting by bytes would keep only [UNK]s (zero vector).
_E = "\u00e9"
UNK_CUT_TEXT = (_E * 120 + " ") * 16 + "dog " + _E * 2000 + " cat"

TEXTS = [
    "dog",
    " dog",
    "The dog bites the man.",
    "running",
    "Kings and queens",
    "",
    "!!! ...",
    "東京は大きい",
    "🙂 hello",
    "HeLLo WoRLD",
    "café naïve",
    LONG_SENTENCE,
    "1984 and 2001",
    "line one\nline two",
    "zxqvbnmpl",
    "   \t  ",
    "[UNK] [CLS] [SEP] [PAD] [MASK]",
    TRUNCATION_TEXT,
    CHAR_CUT_TEXT,
    UNK_CUT_TEXT,
]


def r7(x: float) -> float:
    """Round to 7 significant digits."""
    return float(f"{float(x):.7g}")


def rows(a: np.ndarray) -> list[list[float]]:
    return [[r7(v) for v in row] for row in np.asarray(a, dtype=np.float64)]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model", type=Path, default=REPO_ROOT / "models/minilm-m2v-128")
    p.add_argument("--output", type=Path, default=REPO_ROOT / "tests/data/model2vec-reference.json")
    args = p.parse_args()

    from model2vec import StaticModel

    model = StaticModel.from_pretrained(str(args.model))
    emb = model.encode(TEXTS)  # the library's own result, model defaults
    emb_raw = model.encode(TEXTS, normalize=False)
    model.tokenizer.no_truncation()
    token_ids = model.tokenize(TEXTS)  # add_special_tokens=False, unk removed, no length cut

    # Ids actually averaged by encode(): encode first cuts each text to
    # max_length * median_token_length characters, then the tokenizer truncates
    # to max_length tokens, then unk ids are dropped.
    char_cut = model.max_length * model.median_token_length
    cut_texts = [t[:char_cut] for t in TEXTS]
    model._set_max_length_in_tokenizer(model.max_length)
    encode_ids = model.tokenize(cut_texts)

    # Same algorithm redone in float32 throughout, without the float16 rounding
    # that encode() applies to its output (its output dtype is the embedding dtype).
    table = model.embedding.astype(np.float32)
    f32 = np.zeros((len(TEXTS), model.dim), dtype=np.float32)
    for i, ids in enumerate(encode_ids):
        if ids:
            v = table[ids].mean(axis=0)
            f32[i] = v / (np.linalg.norm(v) + 1e-32)
    # Consistency check of that description against the library output.
    assert np.allclose(f32.astype(np.float16).astype(np.float32), emb.astype(np.float32), atol=2e-3), "mismatch"

    empty = model.encode([""])[0]

    with open(args.model / "config.json") as f:
        config = json.load(f)

    try:
        model_rel = args.model.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        model_rel = args.model.as_posix()

    out = {
        "model": model_rel,
        "generator": "scripts/model2vec/make_reference.py",
        "model2vec_version": metadata.version("model2vec"),
        "tokenizers_version": metadata.version("tokenizers"),
        "numpy_version": metadata.version("numpy"),
        "notes": (
            "embeddings = StaticModel.from_pretrained(model).encode(texts) with the model's defaults "
            "(normalize from config.json, max_length 512). encode returns the embedding matrix dtype "
            "(float16 here): the mean is taken with float32 accumulation and rounded to float16, then "
            "L2-normalised in float32 and rounded to float16 again. embeddings_f32 is the same algorithm "
            "kept in float32 throughout (no float16 rounding of the result). embeddings_unnormalized = "
            "encode(texts, normalize=False). token_ids = ids averaged by encode (tokenizer.json with "
            "add_special_tokens=False, truncated to max_length tokens after cutting the text to "
            "max_length*median_token_length characters, [UNK] ids removed). A text with no ids left "
            "gives the all-zero vector. Floats are rounded to 7 significant digits."
        ),
        "normalize": bool(model.normalize),
        "config_normalize": config.get("normalize"),
        "max_length": model.max_length,
        "median_token_length": model.median_token_length,
        "char_cut": char_cut,
        "unk_token_id": model.unk_token_id,
        "embedding_dtype": str(model.embedding.dtype),
        "dim": model.dim,
        "vocab_size": len(model.tokens),
        "empty_string_embedding": [r7(v) for v in empty.astype(np.float64)],
        "empty_string_is_zero_vector": bool(not np.any(empty)),
        "texts": TEXTS,
        "token_ids": encode_ids,
        "token_count_untruncated": [len(t) for t in token_ids],
        "embeddings": rows(emb),
        "embeddings_f32": rows(f32),
        "embeddings_unnormalized": rows(emb_raw),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {args.output} ({args.output.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
