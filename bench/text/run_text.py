#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""run_text.py -- Quarry's BM25 index (bench_text) next to SQLite FTS5 on BEIR-layout collections.

For each collection (a directory with corpus.jsonl, queries.jsonl and
qrels/test.tsv) this runs, in the same process run:

  * bench_text (the C driver over index/text) with --run, and reads its ranking
    and its latency / build / size figures;
  * SQLite FTS5 through Python's sqlite3 module: an in-memory contentless
    table fts5(body, tokenize='porter unicode61') filled with title + " " + text
    of every document (rowid = line number), and for every judged query the
    OR of its terms, each quoted as an FTS5 string ("term", embedded quotes
    doubled, terms split like unicode61 splits them), ordered by bm25() with
    LIMIT k. Latency is the wall time of execute() + fetchall() per query (one
    warm-up pass, then --repeat timed passes; median and p99 over all calls),
    so it includes the Python call overhead, which is also measured on its own
    (the same statement shape returning k constant rows) and printed.

Both rankings are scored by the same code here: nDCG@10 with trec_eval's
definition (gain = qrels score, log2 discount, ideal from the qrels, scores
<= 0 not relevant) and recall@k, averaged over the judged queries.

  bench/text/run_text.py [--bin build/bench/text/bench_text] [--data ../shared/data]
                         [--sets scifact,ir-classic/cranfield,...] [--k 100] [--repeat 5]

Paths default relative to the repository root. Prints one block per collection
and a comparison table at the end.
"""
import argparse
import json
import math
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_SETS = ["scifact", "ir-classic/cranfield", "ir-classic/cisi", "ir-classic/cacm",
                "ir-classic/med", "ir-classic/adi"]
# unicode61 token characters: letters and digits (categories L*, N*) -- not '_'
TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def load_jsonl(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                yield json.loads(line)


def load_qrels(path):
    qrels = {}
    with open(path, encoding="utf-8") as f:
        next(f)  # header
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3:
                continue
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def ndcg10(ranked, rels):
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:10])
              if rels.get(d, 0) > 0)
    ideal = sorted((r for r in rels.values() if r > 0), reverse=True)[:10]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall(ranked, rels, k):
    rel = {d for d, r in rels.items() if r > 0}
    return len(rel.intersection(ranked[:k])) / len(rel) if rel else 0.0


def evaluate(run, qrels, qids, k):
    nd = [ndcg10(run.get(q, []), qrels[q]) for q in qids]
    rc = [recall(run.get(q, []), qrels[q], k) for q in qids]
    return sum(nd) / len(nd), sum(rc) / len(rc)


def pct(values, p):
    v = sorted(values)
    i = max(0, min(len(v) - 1, math.ceil(p * len(v)) - 1))
    return v[i]


def fts5_query(text):
    terms = TOKEN.findall(text)
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def run_fts5(directory, qids, queries, k, repeat):
    docs = list(load_jsonl(os.path.join(directory, "corpus.jsonl")))
    con = sqlite3.connect(":memory:")
    con.execute("CREATE VIRTUAL TABLE d USING fts5(body, tokenize='porter unicode61', content='')")
    t0 = time.perf_counter()
    con.executemany("INSERT INTO d(rowid, body) VALUES (?, ?)",
                    ((i, ((doc.get("title") or "") + " " + (doc.get("text") or "")).strip())
                     for i, doc in enumerate(docs)))
    con.commit()
    build_s = time.perf_counter() - t0
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    page_size = con.execute("PRAGMA page_size").fetchone()[0]
    sql = "SELECT rowid FROM d WHERE d MATCH ? ORDER BY bm25(d) LIMIT ?"
    fq = {q: fts5_query(queries[q]) for q in qids}
    run, lat = {}, []
    cur = con.cursor()
    for p in range(repeat + 1):
        for q in qids:
            if not fq[q]:
                run[q] = []
                continue
            a = time.perf_counter()
            rows = cur.execute(sql, (fq[q], k)).fetchall()
            e = time.perf_counter() - a
            if p == 0:
                run[q] = [docs[r[0]]["_id"] for r in rows]
            else:
                lat.append(e)
    # Python + sqlite3 call overhead for the same result shape
    over = []
    csql = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT ?) SELECT x FROM c"
    for _ in range(max(200, len(qids))):
        a = time.perf_counter()
        cur.execute(csql, (k,)).fetchall()
        over.append(time.perf_counter() - a)
    con.close()
    return {"run": run, "lat_median_us": statistics.median(lat) * 1e6,
            "lat_p99_us": pct(lat, 0.99) * 1e6, "overhead_us": statistics.median(over) * 1e6,
            "build_s": build_s, "bytes": pages * page_size, "docs": len(docs)}


def run_quarry(binary, directory, name, k, repeat, extra):
    with tempfile.NamedTemporaryFile("r", suffix=".run", delete=False) as tf:
        path = tf.name
    try:
        cmd = [binary, directory, "--name", name, "--k", str(k), "--repeat", str(repeat),
               "--run", path, "--json"] + extra
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        info = None
        for line in out.splitlines():
            if line.startswith("json "):
                info = json.loads(line[5:])
            else:
                print("  " + line)
        run = {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                q, d, _, _ = line.rstrip("\n").split("\t")
                run.setdefault(q, []).append(d)
        info["run"] = run
        return info
    finally:
        os.unlink(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bench", "text", "bench_text"))
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--sets", default=",".join(DEFAULT_SETS))
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--bench-args", default="", help="extra bench_text arguments, e.g. '--k1 0.9 --b 0.4'")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        sys.exit(f"run_text.py: {args.bin} not found (build with -DQUARRY_BUILD_BENCH=ON or pass --bin)")
    rows = []
    for s in args.sets.split(","):
        directory = os.path.join(args.data, s)
        name = os.path.basename(s)
        if not os.path.exists(os.path.join(directory, "corpus.jsonl")):
            print(f"== {name}: not found under {args.data}, skipped")
            continue
        qrels = load_qrels(os.path.join(directory, "qrels", "test.tsv"))
        queries = {q["_id"]: q.get("text", "") for q in load_jsonl(os.path.join(directory, "queries.jsonl"))}
        qids = [q for q in queries if q in qrels]
        print(f"== {name}: {len(qids)} judged queries")
        qi = run_quarry(args.bin, directory, name, args.k, args.repeat, args.bench_args.split())
        q_nd, q_rc = evaluate(qi["run"], qrels, qids, args.k)
        fi = run_fts5(directory, qids, queries, args.k, args.repeat)
        f_nd, f_rc = evaluate(fi["run"], qrels, qids, args.k)
        print(f"  fts5: nDCG@10 {f_nd:.4f} recall@{args.k} {f_rc:.4f} median {fi['lat_median_us']:.1f} us "
              f"p99 {fi['lat_p99_us']:.1f} us (python call overhead {fi['overhead_us']:.1f} us) "
              f"build {fi['build_s']:.3f} s, {fi['bytes']} bytes")
        rows.append((name, q_nd, f_nd, q_rc, f_rc, qi["lat_median_us"], fi["lat_median_us"],
                     fi["overhead_us"], qi["lat_p99_us"], fi["lat_p99_us"],
                     qi["postings_scored"], qi["postings_total"]))
    if not rows:
        return 1
    print()
    print(f"{'collection':<10} {'nDCG@10 Q':>9} {'FTS5':>7} {'R@' + str(args.k) + ' Q':>8} {'FTS5':>7} "
          f"{'med us Q':>9} {'FTS5':>8} {'ratio':>6} {'ratio*':>6} {'p99 Q':>8} {'FTS5':>8} {'scored':>7}")
    for (n, qn, fn, qr, fr, qm, fm, fo, qp, fp, sc, tot) in rows:
        print(f"{n:<10} {qn:>9.4f} {fn:>7.4f} {qr:>8.4f} {fr:>7.4f} {qm:>9.1f} {fm:>8.1f} "
              f"{qm / fm:>6.3f} {qm / max(fm - fo, 1e-9):>6.3f} {qp:>8.1f} {fp:>8.1f} "
              f"{100.0 * sc / max(tot, 1):>6.1f}%")
    print("ratio = Quarry median / FTS5 median; ratio* = the same with FTS5's Python call overhead "
          "subtracted; scored = postings scored by the pruned search / postings of the query terms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
