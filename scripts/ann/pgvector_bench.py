"""engram's SQL search against pgvector's HNSW, in one PostgreSQL server, on
the same real embeddings (see scripts/bench-pgvector).

Loads N vectors into a pgvector table `items(id, tenant, embedding)` and into
an engram store (namespace "tenant<k>", k = id % 100: a 1% tenant), builds
both indexes with the same M and ef_construction, then runs top-10 queries
through SQL — one client, then 8 — over an ef_search sweep, and a 1% tenant
filter. Recall@10 is scored against exact ground truth. Prints one JSON
object.
"""
import argparse
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np
import psycopg

TENANTS = 100


def connect(a):
    return psycopg.connect(host=a.host, port=a.port, user="postgres", dbname=a.db, autocommit=True)


def say(*x):
    print(*x, file=sys.stderr, flush=True)


def vec_text(v):
    return "[" + ",".join(f"{x:.7g}" for x in v) + "]"


def arr_text(v):
    return "{" + ",".join(f"{x:.7g}" for x in v) + "}"


def load(a, base):
    """Load the vectors into both from this client and build both indexes,
    timed alike: pgvector by COPY + CREATE INDEX; engram by COPY into a
    staging table + one engram.insert_many transaction (the set-based path)
    + the graph its background worker builds after COMMIT, until every
    segment row has its graph. Returns (load_s, build_s, sizes)."""
    n = len(base)
    load_s, build_s = {}, {}
    with connect(a) as c:
        c.execute("DROP TABLE IF EXISTS items")
        c.execute("CREATE TABLE items (id bigint PRIMARY KEY, tenant int NOT NULL, embedding vector(%d) NOT NULL)" % base.shape[1])
        t = time.time()
        with c.cursor().copy("COPY items (id, tenant, embedding) FROM STDIN") as cp:
            for i, v in enumerate(base):
                cp.write_row((i, i % TENANTS, vec_text(v)))
        copy_s = time.time() - t
        say(f"pgvector: copied {n} rows in {copy_s:.1f} s")
        c.execute("SET maintenance_work_mem = '4GB'")
        # Leader + 1 worker: the same 2 threads engram builds with.
        c.execute("SET max_parallel_maintenance_workers = %d" % (a.threads - 1))
        t = time.time()
        c.execute(
            "CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_cosine_ops) WITH (m = %d, ef_construction = %d)"
            % (a.m, a.ef_construction)
        )
        build_s["pgvector"] = time.time() - t
        load_s["pgvector"] = copy_s + build_s["pgvector"]
        say(f"pgvector: index built in {build_s['pgvector']:.1f} s")
        c.execute("CREATE INDEX ON items (tenant)")
        c.execute("VACUUM ANALYZE items")

        if c.execute("SELECT count(*) FROM engram.list_stores() WHERE name = %s", (a.store,)).fetchone()[0]:
            c.execute("SELECT engram.drop_store(%s)", (a.store,))
        c.execute(
            "SELECT engram.create_store(%s, %s, settings => %s::jsonb)",
            (a.store, base.shape[1], json.dumps({"m": a.m, "ef_construction": a.ef_construction})),
        )
        c.execute("DROP TABLE IF EXISTS stage")
        c.execute("CREATE UNLOGGED TABLE stage (id bigint, tenant int, key real[])")
        t = time.time()
        with c.cursor().copy("COPY stage (id, tenant, key) FROM STDIN") as cp:
            for i, v in enumerate(base):
                cp.write_row((i, i % TENANTS, arr_text(v)))
        stage_s = time.time() - t
        t = time.time()
        with c.transaction():
            got = c.execute(
                "SELECT count(*) FROM engram.insert_many(%s, "
                "(SELECT array_agg(key ORDER BY id) FROM stage), NULL, "
                "(SELECT array_agg(jsonb_build_object('namespace', 'tenant' || tenant) ORDER BY id) FROM stage))",
                (a.store,),
            ).fetchone()[0]
        insert_s = time.time() - t
        assert got == n, f"engram.insert_many returned {got} ids for {n} rows"
        t = time.time()
        while True:
            st = c.execute("SELECT engram.stats(%s)", (a.store,)).fetchone()[0]
            if st["indexed_rows"] == st["segment_rows"]:
                break
            time.sleep(0.1)
        build_s["engram"] = time.time() - t
        load_s["engram"] = stage_s + insert_s + build_s["engram"]
        say(
            f"engram: staged in {stage_s:.1f} s, inserted and committed in {insert_s:.1f} s, "
            f"graph ready {build_s['engram']:.1f} s after COMMIT"
        )
        c.execute("DROP TABLE stage")
        # engram assigns ids in insertion order from 0: row i gets id i.
        same = c.execute(
            "SELECT count(*) FROM engram.rows r JOIN items i ON i.id = r.id "
            "WHERE r.store = %s AND r.key = i.embedding::real[]",
            (a.store,),
        ).fetchone()[0]
        assert same == n, "engram row ids do not follow insertion order"
        idx, table = c.execute("SELECT pg_relation_size('items_hnsw'), pg_total_relation_size('items')").fetchone()
        st = c.execute("SELECT engram.stats(%s)", (a.store,)).fetchone()[0]
    sizes = {
        "pgvector_index_bytes": idx,
        "pgvector_table_and_indexes_bytes": table,
        "engram_index_bytes": st["index_bytes"],
        "engram_segment_bytes": st["segment_bytes"],
        "pgvector_index_bytes_per_vector": idx / n,
        "engram_codes_and_graph_bytes_per_vector": (st["index_bytes"] + n * (a.dim + 8)) / n,
    }
    detail = {"pgvector_copy_s": copy_s, "engram_stage_s": stage_s, "engram_insert_many_s": insert_s}
    return load_s, build_s, sizes, detail


SQL = {
    "pgvector": "SELECT id FROM items ORDER BY embedding <=> %s::vector LIMIT 10",
    "engram": "SELECT id FROM engram.search_ids(%s, %s::real[], 10, ef => %s)",
    "pgvector_filtered": "SELECT id FROM items WHERE tenant = 7 ORDER BY embedding <=> %s::vector LIMIT 10",
    "engram_filtered": "SELECT id FROM engram.search_ids(%s, %s::real[], 10, '{\"namespace\": \"tenant7\"}', ef => %s)",
}


def run_queries(a, system, ef, texts, filtered=False, iterative=None, barrier=None):
    """Results of `texts`, one at a time on one connection, with the start
    and end of the timed part (after a warm-up, and after `barrier`)."""
    with connect(a) as c:
        if system == "pgvector":
            c.execute("SET hnsw.ef_search = %d" % ef)
            if iterative == "exact":
                # The b-tree on tenant and an exact sort of its rows: no
                # HNSW index scan (bitmap scans stay allowed).
                c.execute("SET enable_indexscan = off")
            elif iterative:
                c.execute("SET hnsw.iterative_scan = %s" % iterative)
        sql = SQL[system + ("_filtered" if filtered else "")]
        cur = c.cursor()

        def one(t):
            args = (t,) if system == "pgvector" else (a.store, t, ef)
            cur.execute(sql, args, prepare=True)
            return [r[0] for r in cur.fetchall()]

        for t in texts[:20]:
            one(t)
        if barrier is not None:
            barrier.wait()
        start = time.time()
        got = [one(t) for t in texts]
        return got, start, time.time()


def client(a, system, ef, texts, barrier, results, k):
    results.put((k,) + run_queries(a, system, ef, texts, barrier=barrier))


def recall(got, gt):
    return float(np.mean([len(set(g) & set(w[:10].tolist())) / min(10, len(w)) for g, w in zip(got, gt)]))


def sweep(a, system, qtexts, gt):
    points = []
    for ef in [int(x) for x in a.ef.split(",")]:
        got, start, end = run_queries(a, system, ef, qtexts)
        r = recall(got, gt)
        points.append({"ef": ef, "recall_at_10": r, "qps": len(qtexts) / (end - start), "clients": 1})
        say(f"{system} ef {ef}, 1 client: recall@10 {r:.4f}, {len(qtexts) / (end - start):.0f} QPS")
        # Several clients split the queries and start together; QPS over the
        # wall time from the first start to the last end.
        ctx = mp.get_context("fork")
        barrier, results = ctx.Barrier(a.clients), ctx.Queue()
        procs = [
            ctx.Process(target=client, args=(a, system, ef, qtexts[k :: a.clients], barrier, results, k))
            for k in range(a.clients)
        ]
        for pr in procs:
            pr.start()
        res = [results.get() for _ in procs]
        for pr in procs:
            pr.join()
        merged = [None] * len(qtexts)
        for k, g, _, _ in res:
            merged[k :: a.clients] = g
        wall = max(r[3] for r in res) - min(r[2] for r in res)
        r8 = recall(merged, gt)
        points.append({"ef": ef, "recall_at_10": r8, "qps": len(qtexts) / wall, "clients": a.clients})
        say(f"{system} ef {ef}, {a.clients} clients: recall@10 {r8:.4f}, {len(qtexts) / wall:.0f} QPS")
    return points


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", required=True)
    p.add_argument("--gt", required=True)
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--db", default="postgres")
    p.add_argument("--store", default="kjv")
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--ef", default="10,20,40,64,100,160")
    a = p.parse_args()
    meta = json.load(open(os.path.join(a.data, "meta.json")))
    a.dim = meta["dim"]
    base = np.fromfile(os.path.join(a.data, "base.f32"), dtype="<f4").reshape(-1, a.dim)
    if a.n:
        base = base[: a.n]
    a.n_rows = len(base)
    queries = np.fromfile(os.path.join(a.data, "queries.f32"), dtype="<f4").reshape(-1, a.dim)[: a.queries]
    gt = np.fromfile(a.gt, dtype="<i4").reshape(-1, 100)[: len(queries)]

    load_s, build_s, sizes, load_detail = load(a, base)
    vtexts = [vec_text(q) for q in queries]
    atexts = [arr_text(q) for q in queries]
    out = {
        "n": a.n_rows,
        "dim": a.dim,
        "m": a.m,
        "ef_construction": a.ef_construction,
        "threads": a.threads,
        "queries": len(queries),
        "pgvector_version": None,
        "load_s": load_s,
        "load_detail": load_detail,
        "build_s": build_s,
        "bytes": sizes,
        "pgvector": sweep(a, "pgvector", vtexts, gt),
        "engram": sweep(a, "engram", atexts, gt),
    }
    with connect(a) as c:
        out["pgvector_version"] = c.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0]

    # A 1% tenant: exact truth among its rows.
    tenant = np.arange(a.n_rows) % TENANTS == 7
    ids = np.nonzero(tenant)[0]
    sims = queries @ base[ids].T
    fgt = ids[np.argsort(-sims, axis=1)[:, :10]]
    filtered = {"selectivity": 1 / TENANTS, "tenant_rows": int(len(ids))}
    plans = [
        ("pgvector", "pgvector", None),
        ("pgvector_iterative", "pgvector", "relaxed_order"),
        ("pgvector_exact", "pgvector", "exact"),
        ("engram", "engram", None),
    ]
    for name, system, it in plans:
        got, start, end = run_queries(a, system, 40, vtexts if system == "pgvector" else atexts, filtered=True, iterative=it)
        secs = end - start
        filtered[name] = {
            "recall_at_10": recall(got, fgt),
            "min_rows": min(len(g) for g in got),
            "mean_rows": float(np.mean([len(g) for g in got])),
            "qps": len(got) / secs,
            "ef": 40,
        }
        say(f"{name} 1% tenant: {filtered[name]}")
    out["filtered"] = filtered

    def best(points, clients):
        q = [p["qps"] for p in points if p["clients"] == clients and p["recall_at_10"] >= 0.95]
        return max(q) if q else None

    ratios = {}
    for cl in (1, a.clients):
        e, v = best(out["engram"], cl), best(out["pgvector"], cl)
        ratios[f"qps_at_recall_0_95_engram_over_pgvector_{cl}_clients"] = e / v if e and v else None
    ratios["build_s_engram_over_pgvector"] = build_s["engram"] / build_s["pgvector"]
    ratios["load_s_engram_over_pgvector"] = load_s["engram"] / load_s["pgvector"]
    # The 1% tenant: engram's QPS over pgvector's best plan reaching recall 0.95.
    ok = [filtered[k]["qps"] for k in ("pgvector", "pgvector_iterative", "pgvector_exact") if filtered[k]["recall_at_10"] >= 0.95]
    e = filtered["engram"]
    ratios["filtered_1pct_qps_engram_over_best_pgvector"] = (
        e["qps"] / max(ok) if ok and e["recall_at_10"] >= 0.95 else None
    )
    out["ratios"] = ratios
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
