"""hnswlib on the same data as bench_ann: build time with T threads, then
queries on one thread through one batched knn_query call per sweep point
(so that Python's per-call overhead is not counted against it; the fastest
of three such calls, as bench_ann times engram), recall@10
against the ground truth file that bench_ann wrote, bytes per vector of the
saved index, and resident memory. Prints one JSON object.

Usage: python hnswlib_bench.py --data DIR --gt FILE [--n N] [--queries Q]
       [--m M] [--ef-construction E] [--threads T] [--ef 10,20,...]
"""
import argparse
import json
import os
import resource
import sys
import tempfile
import time

import hnswlib
import numpy as np


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--data", required=True)
    a.add_argument("--gt", required=True)
    a.add_argument("--n", type=int, default=None)
    a.add_argument("--queries", type=int, default=1000)
    a.add_argument("--m", type=int, default=16)
    a.add_argument("--ef-construction", type=int, default=200)
    a.add_argument("--threads", type=int, default=2)
    a.add_argument("--ef", default="10,20,40,80,160")
    args = a.parse_args()
    dim = json.load(open(os.path.join(args.data, "meta.json")))["dim"]
    base = np.fromfile(os.path.join(args.data, "base.f32"), dtype="<f4").reshape(-1, dim)
    if args.n:
        base = base[: args.n]
    n = len(base)
    queries = np.fromfile(os.path.join(args.data, "queries.f32"), dtype="<f4").reshape(-1, dim)[: args.queries]
    gt = np.fromfile(args.gt, dtype="<i4").reshape(-1, 100)[: len(queries), :10]

    rss0 = rss_bytes()
    index = hnswlib.Index(space="ip", dim=dim)  # unit vectors: ip ranks as cosine
    index.init_index(max_elements=n, M=args.m, ef_construction=args.ef_construction, random_seed=100)
    index.set_num_threads(args.threads)
    t = time.time()
    index.add_items(base, np.arange(n))
    build_s = time.time() - t
    print(f"hnswlib: built {n} in {build_s:.1f} s", file=sys.stderr)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "index.bin")
        index.save_index(path)
        index_bytes = os.path.getsize(path)

    index.set_num_threads(1)
    curve = []
    for ef in [int(x) for x in args.ef.split(",")]:
        index.set_ef(max(ef, 10))
        index.knn_query(queries[:50], k=10, num_threads=1)
        # The fastest of three passes, as bench_ann times engram.
        secs = float("inf")
        for _ in range(3):
            t = time.time()
            labels, _ = index.knn_query(queries, k=10, num_threads=1)
            secs = min(secs, time.time() - t)
        got = list(labels)
        recall = float(np.mean([len(set(g.tolist()) & set(w.tolist())) / 10 for g, w in zip(got, gt)]))
        qps = len(queries) / secs
        print(f"hnswlib ef {ef}: recall@10 {recall:.4f}, {qps:.0f} QPS", file=sys.stderr)
        curve.append({"ef": ef, "recall_at_10": recall, "qps": qps})
    print(
        json.dumps(
            {
                "n": n,
                "dim": dim,
                "M": args.m,
                "ef_construction": args.ef_construction,
                "threads": args.threads,
                "build_s": build_s,
                "bytes_per_vector": index_bytes / n,
                "index_bytes": index_bytes,
                "rss_delta_bytes": rss_bytes() - rss0,
                "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "hnswlib_version": getattr(hnswlib, "__version__", "0.8.0"),
                "curve": curve,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
