"""Baselines of bench-generate: bits per character of three classic models on
the fixed train / held-out split made by prepare.py.

    baselines.py --data DATA --out OUT.json [--work DIR]

DATA is the directory prepare.py wrote (DATA/train/*.txt, one play per file,
and DATA/heldout.txt, three whole plays).  The training text of every model is
the train files in file-name order, each followed by "\n".  Bits per character
= total bits / len(heldout text as a Python str).

  ppmd        PPMd, order 8 (pyppmd), conditional compression:
              bits = 8 * (len(C(train + heldout)) - len(C(train)))
  zpaq        ZPAQ level 5 (PyPI zpaq, libzpaq in memory), same formula
  infinigram  a byte-level infini-gram index (the package's own indexer,
              --token_dtype u8) over the training documents; every held-out
              byte is predicted from the held-out bytes before it, by an
              interpolated, discounted mixture of the counts of *every* suffix
              of its context from the longest one found in the index (the
              "infinity-gram" suffix) down to the empty one, and finally a
              uniform 1/256 (details at `Smoothing` below).  Lossless: every
              byte gets p > 0 and each prediction sums to 1 over 256 bytes.
              Also the latency of the engine's next-token distribution of the
              longest matching suffix (infgram_ntd), p50 / p99.

Settings that are choices (PPMd variant, zpaq hints, the smoothing's
parameters) are chosen on a *tuning split of the training text only*: the last
training document (in name order) is scored by each model trained on the other
training documents; held-out text is never used to choose anything.

Rerunnable: the infini-gram indexes are kept in the work directory (default
DATA/infini-gram-index) with a stamp of what they were built from, and are
reused when the training text is the same.  Progress goes to stderr.
"""
import argparse
import array
import hashlib
import json
import math
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import time
from importlib.metadata import version as pkg_version

import numpy as np
import pyppmd
import zpaq
from infini_gram.engine import InfiniGramEngine

PPMD_ORDER = 8
PPMD_MEM = 1 << 30  # 1 GiB (pyppmd accepts up to ~4 GiB; see notes for a check)
ZPAQ_LEVEL = 5
LATENCY_QUERIES = 1000
LATENCY_CONTEXT = 1000  # bytes of held-out context handed to each query
EOS = 254  # the engine reports "end of document" as this token id (see open_engine)


def log(msg: str) -> None:
    print(f"baselines: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------

def load_data(data_dir: pathlib.Path):
    """[(name, text)] of the training documents (each text already followed
    by "\n", in file-name order) and the held-out text."""
    train_dir, heldout_path = data_dir / "train", data_dir / "heldout.txt"
    files = sorted(train_dir.glob("*.txt"), key=lambda p: p.name) if train_dir.is_dir() else []
    if not files or not heldout_path.is_file():
        sys.exit(f"baselines: no prepared data in {data_dir} (want {train_dir}/*.txt and {heldout_path}); "
                 f"run scripts/generate/prepare.py {data_dir} first")
    docs = [(p.stem, p.read_text(encoding="utf-8") + "\n") for p in files]
    return docs, heldout_path.read_text(encoding="utf-8")


# ----------------------------------------------------------------------------
# Compressors: conditional compression, bits(test | train) = 8 * (|C(train+test)| - |C(train)|)
# ----------------------------------------------------------------------------

def ppmd_size(data: bytes, variant: str, mem: int = PPMD_MEM) -> int:
    # pyppmd: Ppmd7Encoder = PPMd var. H (as in 7z), Ppmd8Encoder = var. I rev. 1
    # (as in zip), both (max_order, mem_size); encode() then flush() gives the stream.
    enc = pyppmd.Ppmd8Encoder(PPMD_ORDER, mem) if variant == "I" else pyppmd.Ppmd7Encoder(PPMD_ORDER, mem)
    return len(enc.encode(data)) + len(enc.flush())


def zpaq_size(data: bytes, hints: bool) -> int:
    # threads=1: one block, one model over the whole input (the default threads=0
    # cuts the input into one independently modelled block per core, which would
    # make the conditional difference meaningless).  hints: the binding's
    # pre-scan for text / redundancy passed to libzpaq in the method string
    # (its default is True in the code although its docstring says False).
    return len(zpaq.compress(data, level=ZPAQ_LEVEL, threads=1, hints=hints))


def conditional_bits(size_fn, train: bytes, test: bytes) -> int:
    return 8 * (size_fn(train + test) - size_fn(train))


# ----------------------------------------------------------------------------
# infini-gram: index
# ----------------------------------------------------------------------------

def build_index(work: pathlib.Path, name: str, docs) -> tuple[pathlib.Path, float, bool]:
    """Index `docs` (one jsonl line {"text": ...} per document) with the
    package's indexer, byte level.  Returns (index dir, build seconds, reused)."""
    base = work / name
    jsonl = "".join(json.dumps({"text": text}) + "\n" for _, text in docs).encode("utf-8")
    key = hashlib.sha256(jsonl).hexdigest() + f" infini-gram {pkg_version('infini-gram')} u8"
    stamp, index = base / "stamp.json", base / "index"
    if stamp.is_file():
        old = json.loads(stamp.read_text())
        if old.get("key") == key and all((index / f"{f}.0").is_file() for f in ("tokenized", "table", "offset")):
            log(f"infini-gram index '{name}': reusing {index} (built in {old['seconds']:.1f} s)")
            return index, old["seconds"], True
    shutil.rmtree(base, ignore_errors=True)
    (base / "input").mkdir(parents=True)
    (base / "input" / "train.jsonl").write_bytes(jsonl)
    tmp = base / "index.tmp"
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ulimit = 1048576 if hard == resource.RLIM_INFINITY else hard  # the indexer sets soft = hard = this
    cmd = [sys.executable, "-m", "infini_gram.indexing", "--data_dir", str(base / "input"),
           "--save_dir", str(tmp), "--token_dtype", "u8", "--version", "4",
           "--cpus", str(os.cpu_count() or 1), "--mem", "2", "--ulimit", str(ulimit)]
    # The indexer imports transformers even without a tokenizer; keep it offline.
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    log(f"infini-gram index '{name}': building ({len(docs)} documents, {len(jsonl)} bytes of jsonl)")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=sys.stderr, env=env)
    seconds = time.perf_counter() - t0
    tmp.rename(index)
    stamp.write_text(json.dumps({"key": key, "seconds": seconds, "documents": [n for n, _ in docs]}, indent=1))
    log(f"infini-gram index '{name}': built in {seconds:.1f} s")
    return index, seconds, False


def open_engine(index: pathlib.Path) -> InfiniGramEngine:
    # The u8 engine takes eos_token_id and vocab_size as bytes (vocab_size <= 255,
    # eos < vocab_size).  It reports a continuation that is the document
    # separator (0xff) or the end of the data as eos; 254 (0xfe) never occurs in
    # UTF-8, so token 254 means exactly "end of document" and is not a byte.
    return InfiniGramEngine(index_dir=str(index), eos_token_id=EOS, vocab_size=255,
                            version=4, token_dtype="u8")


class SuffixArray:
    """The index's own files, read directly: tokenized.0 (the documents, each
    preceded by the separator 0xff) and table.0 (the suffix array, ptr_size
    bytes per entry, little endian).  Scoring walks this array incrementally,
    some hundreds of times faster than one engine call per suffix length
    (~10 us a suffix here; each ntd call spawns threads: ~5 ms for a short
    range, 130 ms for the empty prompt); `check_against_engine` confirms both agree."""

    def __init__(self, index: pathlib.Path):
        ds = np.fromfile(index / "tokenized.0", dtype=np.uint8)
        self.n = n = len(ds)
        raw = np.fromfile(index / "table.0", dtype=np.uint8)
        width = len(raw) // n
        assert width * n == len(raw), "table.0 is not a whole number of pointers"
        raw = raw.reshape(n, width)
        self.sa = np.zeros(n, dtype=np.int64)
        for j in range(width):
            self.sa |= raw[:, j].astype(np.int64) << (8 * j)
        # Next-symbol codes in suffix-array order: 0 = end of the data (a suffix
        # that ends there sorts first), b + 1 = byte b, 256 = separator 0xff.
        self.code = np.zeros(n + 1, dtype=np.int16)
        self.code[:n] = ds.astype(np.int16) + 1


# ----------------------------------------------------------------------------
# infini-gram: Smoothing
# ----------------------------------------------------------------------------
#
# For the byte x at position i and each suffix s_k of its context of length
# k = 0..L (L = length of the longest suffix that occurs in the index, the
# infini-gram suffix), the index gives c_k(y) = count of s_k followed by byte y
# (continuations that end a document are not bytes and are left out),
# c_k = sum_y c_k(y), and n1_k, n2_k, n3_k = the number of bytes y seen once,
# twice, three or more times after s_k.  Interpolated absolute discounting with
# Chen & Goodman's three discounts and a concentration theta (Pitman-Yor style),
# from the empty suffix up to the longest one:
#
#     p_{-1}(y) = 1/256
#     p_k(y)    = (c_k(y) - D(c_k(y)) + (theta + D1 n1_k + D2 n2_k + D3 n3_k) p_{k-1}(y)) / (c_k + theta)
#
# with D(c) = D1, D2, D3 for c = 1, 2, >=3 (0 for c = 0); a level with c_k = 0
# passes p_{k-1} through; the prediction is p_L(x).  Each p_k sums to 1 over
# the 256 bytes, and every byte keeps p > 0 (discounts are kept >= 0.02, so
# the back-off weight is positive).  (D1, D2, D3, theta) are separate for
# suffix lengths 0-2, 3-5, 6-9 and >= 10 (BANDS), 16 parameters in all, fitted
# by coordinate descent on bits on the tuning split, never on held-out text.
# (On the tuning split one shared set of 4 gave ~0.03 bpc more, one set per
# length up to 16 ~0.002 bpc less.)  Counts are exact (no sampling).

BIG = 4096  # ranges wider than this are cached (they belong to short, frequent suffixes)
SMALL = 48  # ranges up to this are summarised in pure Python
BANDS = [(0, 2), (3, 5), (6, 9), (10, None)]  # suffix lengths sharing one parameter set
LOWER = [0.02, 0.02, 0.02, 0.01]  # bounds of (D1, D2, D3, theta)
UPPER = [1.0, 2.0, 3.0, 1e5]


def band(k: int) -> int:
    return next(j for j, (lo, hi) in enumerate(BANDS) if k >= lo and (hi is None or k <= hi))


class Stats:
    """Per position, per suffix length k = 0..L: (c_k(x), c_k, n1_k, n2_k, n3_k),
    regrouped by k so one vectorised pass per length updates all positions."""

    def __init__(self, lens, cols):
        self.lens = np.asarray(lens, dtype=np.int64)
        cx, c, n1, n2, n3 = (np.frombuffer(a, dtype=np.int64).astype(np.float64) for a in cols)
        starts = np.concatenate([[0], np.cumsum(self.lens)[:-1]])
        level = np.arange(int(self.lens.sum())) - np.repeat(starts, self.lens)
        pos = np.repeat(np.arange(len(self.lens)), self.lens)
        order = np.argsort(level, kind="stable")
        bounds = np.searchsorted(level[order], np.arange(int(level.max()) + 2))
        self.levels = []
        for k in range(len(bounds) - 1):
            g = order[bounds[k]:bounds[k + 1]]
            g = g[c[g] > 0]  # a level with no byte continuation passes p through
            self.levels.append((band(k), pos[g], cx[g], c[g], n1[g], n2[g], n3[g],
                                cx[g] == 1, cx[g] == 2, cx[g] >= 3))
        self.flat = {"cx": cx, "c": c, "offsets": np.concatenate([[0], np.cumsum(self.lens)])}

    def probs(self, params) -> np.ndarray:
        """p(x) at every position; params: one (D1, D2, D3, theta) per band."""
        p = np.full(len(self.lens), 1.0 / 256)
        for b, pos, cx, c, n1, n2, n3, is1, is2, is3 in self.levels:
            d1, d2, d3, theta = params[b]
            disc = d1 * is1 + d2 * is2 + d3 * is3
            gamma = theta + d1 * n1 + d2 * n2 + d3 * n3
            p[pos] = (cx - disc + gamma * p[pos]) / (c + theta)
        return p

    def bits(self, params) -> float:
        return float(-np.log2(self.probs(params)).sum())


def summarise(vals, v):
    """From the sorted next-symbol codes of one range: (lo, hi) of code v,
    c (byte continuations), n1, n2, n3."""
    c = n1 = n2 = n3 = 0
    lo = hi = 0
    run_start, prev = 0, None
    for j, u in enumerate(vals + [None]):
        if u != prev:
            if prev is not None and 0 < prev < 256:
                r = j - run_start
                c += r
                if r == 1:
                    n1 += 1
                elif r == 2:
                    n2 += 1
                else:
                    n3 += 1
                if prev == v:
                    lo, hi = run_start, j
            run_start, prev = j, u
    return lo, hi, c, n1, n2, n3


def summarise_counts(counts):
    """The same from a bincount over codes 0..256: (cumulative offsets, c, n1, n2, n3)."""
    b = counts[1:256]
    cum = np.concatenate([[0], np.cumsum(counts)]).tolist()
    return cum, int(b.sum()), int((b == 1).sum()), int((b == 2).sum()), int((b >= 3).sum())


def collect(sa: SuffixArray, text: bytes, every: int = 50000) -> Stats:
    """Walk `text`, keeping the suffix-array range of every suffix of the
    context (lengths 0..L).  The range of s_{k+1} at position i+1 is the part
    of the range of s_k at position i whose next byte is text[i] (a suffix
    array range is sorted by the next byte), so no search is ever repeated;
    the ranges for which text[i] was never seen end the walk (L_{i+1} =
    1 + the longest k with c_k(text[i]) > 0)."""
    SA, code, n = sa.sa, sa.code, sa.n
    cache = {}
    lens = array.array("q")
    cols = [array.array("q") for _ in range(5)]
    cx_a, c_a, n1_a, n2_a, n3_a = cols
    ranges = [(0, n)]
    t0 = time.perf_counter()
    for i, x in enumerate(text):
        v = x + 1
        nxt = [(0, n)]
        for k, (l, r) in enumerate(ranges):
            m = r - l
            if m <= SMALL:
                lo, hi, c, n1, n2, n3 = summarise(code[SA[l:r] + k].tolist(), v)
            else:
                key = (l, r, k)
                s = cache.get(key) if m > BIG else None
                if s is None:
                    s = summarise_counts(np.bincount(code[SA[l:r] + k], minlength=257))
                    if m > BIG:
                        cache[key] = s
                cum, c, n1, n2, n3 = s
                lo, hi = cum[v], cum[v + 1]
            cx_a.append(hi - lo)
            c_a.append(c)
            n1_a.append(n1)
            n2_a.append(n2)
            n3_a.append(n3)
            if hi > lo:
                nxt.append((l + lo, l + hi))
        lens.append(len(ranges))
        ranges = nxt
        if every and (i + 1) % every == 0:
            el = time.perf_counter() - t0
            log(f"  {i + 1}/{len(text)} bytes, {el:.0f} s, ~{el / (i + 1) * (len(text) - i - 1):.0f} s to go")
    return Stats(lens, cols)


def fit(stats: Stats):
    """Coordinate descent on total bits: each parameter in turn is moved by
    +-step (theta multiplicatively) while that helps; steps halve when a sweep
    finds nothing.  Returns (params, bits, evaluations)."""
    x = [[0.5, 1.0, 1.5, 20.0] for _ in BANDS]
    best, evals = stats.bits(x), 1
    step = [0.2, 0.4, 0.6, 1.0]  # D steps are additive, the theta step is in log space
    while step[0] > 0.004:
        improved = False
        for b in range(len(BANDS)):
            for j in range(4):
                for sgn in (1, -1):
                    while True:
                        y = [list(v) for v in x]
                        y[b][j] = y[b][j] * math.exp(sgn * step[j]) if j == 3 else y[b][j] + sgn * step[j]
                        y[b][j] = min(max(y[b][j], LOWER[j]), UPPER[j])
                        if y[b][j] == x[b][j]:
                            break
                        bits = stats.bits(y)
                        evals += 1
                        if bits >= best - 1e-6:
                            break
                        best, x, improved = bits, y, True
        if not improved:
            step = [v / 2 for v in step]
    return x, best, evals


def check_against_engine(engine: InfiniGramEngine, indexed: bytes, text: bytes, stats: Stats, params,
                         positions) -> None:
    """Recompute p(x) at a few positions through the engine's own API and check
    it equals the fast walk: infgram_ntd gives the suffix length L, and for each
    suffix s the byte counts are engine.count(s + [y]) (y over the bytes seen
    after the next shorter suffix), c = count(s) - count(s + [0xff]) - [s is not empty
    and the indexed text ends with s].  (engine.ntd is not used here: for a suffix that
    is both followed by a document separator and at the very end of the data it
    returns every occurrence as end-of-document, because both map to eos and its
    divide-and-conquer assumes the ends of a range bound its tokens.)  Also
    checks that the full 256-byte distribution sums to 1 with every byte > 0."""
    offs = stats.flat["offsets"]
    p_fast = stats.probs(params)
    memo = {}

    def counts(suffix: bytes, candidates):
        if suffix not in memo:
            cnt = np.zeros(256)
            for y in candidates:
                cnt[y] = engine.count(list(suffix) + [y])["count"]
            total = engine.count(list(suffix))["count"] - engine.count(list(suffix) + [0xFF])["count"]
            total -= int(len(suffix) > 0 and indexed.endswith(suffix))
            assert cnt.sum() == total, (suffix, cnt.sum(), total)
            memo[suffix] = cnt
        return memo[suffix]

    for i in positions:
        ctx = text[:i]
        L = engine.infgram_ntd(list(ctx), max_support=1)["suffix_len"]
        assert L + 1 == stats.lens[i], (i, L, stats.lens[i])
        p = np.full(256, 1.0 / 256)
        cand = range(255)
        for k in range(L + 1):
            cnt = counts(ctx[len(ctx) - k:], cand)
            cand = np.nonzero(cnt)[0].tolist()
            c = cnt.sum()
            j = offs[i] + k
            assert (cnt[text[i]], c) == (stats.flat["cx"][j], stats.flat["c"][j]), (i, k)
            if c == 0:
                continue
            d1, d2, d3, theta = params[band(k)]
            disc = np.where(cnt >= 3, d3, np.where(cnt == 2, d2, np.where(cnt == 1, d1, 0.0)))
            gamma = theta + d1 * (cnt == 1).sum() + d2 * (cnt == 2).sum() + d3 * (cnt >= 3).sum()
            p = (cnt - disc + gamma * p) / (c + theta)
        assert abs(p.sum() - 1) < 1e-9 and p.min() > 0, (i, p.sum(), p.min())
        assert abs(p[text[i]] - p_fast[i]) <= 1e-9 * p_fast[i], (i, p[text[i]], p_fast[i])


def latency(engine: InfiniGramEngine, text: bytes, n: int = LATENCY_QUERIES):
    """p50 / p99 (ms) of one next-token-distribution query of the longest
    matching suffix (InfiniGramEngine.infgram_ntd, default max_support), one at
    a time, at n seeded positions of the held-out text with the preceding
    LATENCY_CONTEXT bytes as the prompt."""
    rng = np.random.default_rng(0)
    positions = rng.integers(LATENCY_CONTEXT, len(text), size=n + 100)
    times = []
    for j, i in enumerate(positions):
        ctx = list(text[i - LATENCY_CONTEXT:i])
        t0 = time.perf_counter()
        r = engine.infgram_ntd(ctx)
        dt = time.perf_counter() - t0
        assert "error" not in r, r
        if j >= 100:  # the first 100 warm the page cache and are not counted
            times.append(dt * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


# ----------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=pathlib.Path, help="directory written by prepare.py")
    ap.add_argument("--out", required=True, type=pathlib.Path, help="JSON file to write")
    ap.add_argument("--work", type=pathlib.Path, default=None,
                    help="where the infini-gram indexes live (default DATA/infini-gram-index)")
    args = ap.parse_args()
    data = args.data.expanduser().resolve()
    work = (args.work.expanduser() if args.work else data / "infini-gram-index").resolve()

    docs, heldout = load_data(data)
    train = "".join(t for _, t in docs).encode("utf-8")
    test = heldout.encode("utf-8")
    chars = len(heldout)
    # tuning split: the last training document, scored by models of the others
    tune_docs, (tune_name, tune_text) = docs[:-1], docs[-1]
    tune_train = "".join(t for _, t in tune_docs).encode("utf-8")
    tune_test = tune_text.encode("utf-8")
    tune_chars = len(tune_text)
    log(f"train {len(docs)} documents, {len(train)} bytes; held-out {len(test)} bytes = {chars} chars; "
        f"tuning split: {tune_name} ({len(tune_test)} bytes) against the other {len(tune_docs)} documents")
    result = {"heldout_chars": chars, "train_chars": sum(len(t) for _, t in docs), "notes": {}, "seconds": {}}

    # --- PPMd -----------------------------------------------------------------
    t0 = time.perf_counter()
    tune = {v: conditional_bits(lambda d: ppmd_size(d, v), tune_train, tune_test) / tune_chars for v in ("H", "I")}
    variant = min(tune, key=tune.get)
    log(f"ppmd: tuning split bpc H {tune['H']:.4f}, I {tune['I']:.4f} -> variant {variant} "
        f"({time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    bits = conditional_bits(lambda d: ppmd_size(d, variant), train, test)
    result["seconds"]["ppmd"] = time.perf_counter() - t0
    result["ppmd"] = bits / chars
    small = ppmd_size(train + test, variant, 256 << 20) == ppmd_size(train + test, variant)
    log(f"ppmd: {result['ppmd']:.4f} bpc ({result['seconds']['ppmd']:.1f} s)")
    result["notes"]["ppmd"] = (
        f"pyppmd {pkg_version('pyppmd')}, PPMd variant {variant} "
        f"({'Ppmd8Encoder, var. I rev. 1, restore method restart' if variant == 'I' else 'Ppmd7Encoder, var. H'}), "
        f"order {PPMD_ORDER}, mem_size {PPMD_MEM >> 20} MiB (256 MiB gives "
        f"{'the same output, so the model never fills its memory' if small else 'a different output'}); bits = 8*(len(C(train+heldout)) - len(C(train))), "
        f"one stream, no reset between train and held-out; variant chosen on the tuning split "
        f"(bpc H {tune['H']:.4f}, I {tune['I']:.4f} on {tune_name} given the other training plays)")

    # --- zpaq -----------------------------------------------------------------
    t0 = time.perf_counter()
    tune = {h: conditional_bits(lambda d: zpaq_size(d, h), tune_train, tune_test) / tune_chars for h in (False, True)}
    hints = min(tune, key=tune.get)
    log(f"zpaq: tuning split bpc hints off {tune[False]:.4f}, on {tune[True]:.4f} -> hints {hints} "
        f"({time.perf_counter() - t0:.1f} s)")
    t0 = time.perf_counter()
    bits = conditional_bits(lambda d: zpaq_size(d, hints), train, test)
    result["seconds"]["zpaq"] = time.perf_counter() - t0
    result["zpaq"] = bits / chars
    log(f"zpaq: {result['zpaq']:.4f} bpc ({result['seconds']['zpaq']:.1f} s)")
    result["notes"]["zpaq"] = (
        f"zpaq {pkg_version('zpaq')} (libzpaq in memory), zpaq.compress(level={ZPAQ_LEVEL}, threads=1, "
        f"hints={hints}): method '5' with 64 MB blocks, so train+held-out is one block and one model; "
        f"bits = 8*(len(C(train+heldout)) - len(C(train))); hints chosen on the tuning split "
        f"(bpc off {tune[False]:.4f}, on {tune[True]:.4f})")

    # --- infini-gram ----------------------------------------------------------
    work.mkdir(parents=True, exist_ok=True)
    tune_index, _, _ = build_index(work, "tune", tune_docs)
    index, index_s, reused = build_index(work, "train", docs)
    result["seconds"]["infinigram_index"] = index_s

    t0 = time.perf_counter()
    log(f"infini-gram: collecting suffix counts on the tuning split ({len(tune_test)} bytes)")
    tune_stats = collect(SuffixArray(tune_index), tune_test)
    params, tune_bits, evals = fit(tune_stats)
    tune_s = time.perf_counter() - t0
    shown = "; ".join(f"lengths {lo}-{hi if hi is not None else ''}: D1 {d1:.3f} D2 {d2:.3f} D3 {d3:.3f} "
                      f"theta {th:.3g}" for (lo, hi), (d1, d2, d3, th) in zip(BANDS, params))
    log(f"infini-gram: fitted {shown}; tuning split {tune_bits / tune_chars:.4f} bpc "
        f"({evals} evaluations, {tune_s:.1f} s)")
    engine = open_engine(tune_index)
    check_against_engine(engine, tune_train, tune_test, tune_stats, params,
                         list(range(0, 40)) + list(range(5000, len(tune_test), 2500)))
    del engine
    log("infini-gram: the fast walk agrees with the engine's count/infgram_ntd on the tuning split")

    engine = open_engine(index)
    t0 = time.perf_counter()
    log(f"infini-gram: scoring the held-out text ({len(test)} bytes)")
    stats = collect(SuffixArray(index), test)
    p = stats.probs(params)
    assert p.min() > 0
    bits = float(-np.log2(p).sum())
    score_s = time.perf_counter() - t0
    result["seconds"]["infinigram_score"] = score_s
    result["infinigram"] = bits / chars
    log(f"infini-gram: {result['infinigram']:.4f} bpc ({score_s:.1f} s)")
    rng = np.random.default_rng(1)
    check_against_engine(engine, train, test, stats, params, sorted(rng.choice(len(test), 40, replace=False).tolist()))
    log("infini-gram: the fast walk agrees with the engine on 40 held-out positions")
    lens = stats.lens - 1
    p50, p99 = latency(engine, test)
    result["infinigram_latency_ms"] = {"p50": p50, "p99": p99}
    log(f"infini-gram: infgram_ntd latency p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    result["notes"]["infinigram"] = (
        f"infini-gram {pkg_version('infini-gram')}: index built by infini_gram.indexing (--token_dtype u8 "
        f"--version 4, no tokenizer; one jsonl document per training play, text = the play + '\\n'), "
        f"{'reused from an earlier run, which built it' if reused else 'built'} in {index_s:.1f} s "
        f"(the indexer imports transformers even without a tokenizer). "
        f"Every held-out byte is predicted from the held-out bytes before it (the context starts empty at the "
        f"start of heldout.txt and runs on across the three plays); the index is static, nothing is learnt "
        f"from held-out text as it goes (PPMd and zpaq do learn). Smoothing: interpolated absolute discounting "
        f"(3 discounts by count, Chen & Goodman, and a concentration theta) over every suffix of the context "
        f"from the empty one up to the longest one in the index (the infini-gram suffix; its length: median "
        f"{int(np.median(lens))}, mean {lens.mean():.1f}, max {int(lens.max())} bytes), on top of uniform 1/256; "
        f"continuations that end a document are left out of the counts; counts are exact. Parameters per band "
        f"of suffix lengths: {shown}; fitted by coordinate descent ({evals} evaluations) on the tuning split "
        f"({tune_name} scored against an index of the other {len(tune_docs)} training plays: "
        f"{tune_bits / tune_chars:.4f} bpc; collection and fit {tune_s:.0f} s). Counts are read by walking the "
        f"index's suffix array directly (the range of the next position's suffix is a sub-range of the previous "
        f"one), ~{score_s / len(test) * 1e6:.0f} us per byte; at 80 positions the probability was recomputed "
        f"through the engine (infgram_ntd for the suffix length, count for every suffix and byte) and agreed, "
        f"each distribution summing to 1 over the 256 bytes. All {len(test)} held-out bytes scored in "
        f"{score_s:.0f} s. Latency: InfiniGramEngine.infgram_ntd(prompt) with the engine's default max_support "
        f"1000, prompt = the {LATENCY_CONTEXT} held-out bytes before one of {LATENCY_QUERIES} seeded positions, "
        f"one query at a time after 100 warm-up queries, Python wrapper included")

    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    order = ["ppmd", "zpaq", "infinigram", "infinigram_latency_ms", "heldout_chars", "train_chars", "notes", "seconds"]
    result["seconds"] = {k: round(v, 3) for k, v in result["seconds"].items()}
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({k: result[k] for k in order}, indent=1) + "\n")
    tmp.replace(out)
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
