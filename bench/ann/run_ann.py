#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ANN benchmark: Quarry vs hnswlib vs FAISS HNSW, recall / QPS, build, memory.

For each data set, runs in the same invocation, one after the other:
  quarry   bench_ann (bench/ann/bench_ann.c, the public API; --index hnsw by
           default, --index flat to check the pipeline: ef is then ignored and
           recall is 1.0)
  hnswlib  peers.py --engine hnswlib   (one thread for build and search)
  faiss    peers.py --engine faiss     (IndexHNSWFlat, one thread)
with the same M, ef_construction, k, queries, ef sweep and repeat count, and
writes every row to OUT/<dataset>.csv (with --rounds R the engines run R
times in turn and the CSV keeps per-point medians; OUT/<dataset>.rounds.csv
then holds every round's rows):

  engine,dataset,index,param,value,recall,qps,build_s,peak_rss_mb,index_bytes

plus OUT/<dataset>.log (the programs' comment lines: versions, build CPU
time, RSS growth) and OUT/<dataset>.png (recall vs QPS, log scale). It then
prints a summary per data set: for each engine the QPS at recall@k 0.95 and
0.99 (interpolated, in log QPS, between the two sweep points around the
target; marked '>=' when the first point already exceeds it), build time and
memory, and the ratios quarry/hnswlib and quarry/faiss.

Data sets (when none is given, siftsmall and fashion-mnist are looked up in
../shared/data next to the repository root):
  --siftsmall DIR      siftsmall_{base,query}.fvecs, siftsmall_groundtruth.ivecs
  --fashion-mnist DIR  {train,t10k}-images-idx3-ubyte.gz and
                       fashion-mnist_groundtruth_l2_top100.ivecs; the IDX .gz
                       images are converted to temporary .fvecs first
  --fvecs BASE QUERY GT --name NAME [--metric l2|ip|cosine|angular]
                       any ann-benchmarks-style set in TEXMEX files (SIFT1M,
                       GloVe-100: angular is run as cosine)
Only the first --max-queries queries are used (1000 by default).

Timing: every engine answers one query at a time on one thread; each sweep
point is timed --repeat times (each timing at least --min-time seconds) and
the median is kept. The peers' Debian builds may be generic (SSE-only)
builds; their compile options are in the .log. QUARRY_SIMD (via
--quarry-simd) pins Quarry's distance kernels to one ISA for a like-for-like
comparison of the graph search itself.

Example:  python3 bench/ann/run_ann.py
          python3 bench/ann/run_ann.py --index flat --max-queries 200
          python3 bench/ann/run_ann.py --fvecs sift_base.fvecs sift_query.fvecs \\
                  sift_groundtruth.ivecs --name sift1m --out /tmp/ann

Needs numpy, hnswlib, faiss and matplotlib importable by the interpreter
(Debian: python3-numpy python3-hnswlib python3-faiss python3-matplotlib, with
the system /usr/bin/python3).
"""
import argparse
import csv
import glob
import gzip
import io
import math
import os
import re
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
COLUMNS = ["engine", "dataset", "index", "param", "value", "recall", "qps", "build_s",
           "peak_rss_mb", "index_bytes"]
ENGINES = ("quarry", "hnswlib", "faiss")
TARGETS = (0.95, 0.99)


def write_fvecs(path, x):
    n, d = x.shape
    rec = np.empty((n, d + 1), dtype=np.float32)
    rec[:, 0] = np.array([d], dtype=np.int32).view(np.float32)[0]
    rec[:, 1:] = x
    rec.tofile(path)


def fvecs_shape(path):
    with open(path, "rb") as f:
        d = struct.unpack("<i", f.read(4))[0]
    return os.path.getsize(path) // (4 * (d + 1)), d


def read_idx_images(path, limit=None):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        b = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", b[:16])
    if magic != 2051:
        sys.exit("%s: not an IDX image file" % path)
    x = np.frombuffer(b, dtype=np.uint8, offset=16).reshape(n, rows * cols)
    return x[:limit].astype(np.float32)


def build_type(bench):
    """CMAKE_BUILD_TYPE of the build tree holding bench, or None when sanitized."""
    cache = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(bench))),
                         "CMakeCache.txt")
    try:
        with open(cache) as f:
            text = f.read()
    except OSError:
        return "?"
    if re.search(r"^QUARRY_(ASAN|UBSAN|TSAN):BOOL=ON$", text, re.M):
        return None
    m = re.search(r"^CMAKE_BUILD_TYPE:STRING=(.*)$", text, re.M)
    return m.group(1) if m else "?"


def find_bench(explicit):
    if explicit:
        if not os.access(explicit, os.X_OK):
            sys.exit("%s is not an executable" % explicit)
        return explicit
    cands = [p for p in glob.glob(os.path.join(REPO, "build*", "bench", "ann", "bench_ann"))
             if os.access(p, os.X_OK)]
    release = [p for p in cands if build_type(p) == "Release"]
    if not release:
        sys.exit("no Release bench_ann under %s/build*/; build one (cmake -S . -B build-ann "
                 "-DCMAKE_BUILD_TYPE=Release && cmake --build build-ann --target bench_ann) "
                 "or pass --bench-bin" % os.path.relpath(REPO))
    return max(release, key=os.path.getmtime)


def parse_output(text, what):
    """CSV rows and '#' comment lines of a bench_ann / peers.py run."""
    comments = [ln for ln in text.splitlines() if ln.startswith("#")]
    body = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]
    rows = []
    for r in csv.DictReader(io.StringIO("\n".join(body))):
        if set(r) != set(COLUMNS):
            sys.exit("%s: unexpected CSV columns %s" % (what, sorted(r)))
        for key in ("value", "index_bytes"):
            r[key] = int(r[key])
        for key in ("recall", "qps", "build_s", "peak_rss_mb"):
            r[key] = float(r[key])
        rows.append(r)
    if not rows:
        sys.exit("%s printed no result rows" % what)
    return rows, comments


def show_path(p):
    """p relative to the working directory when it lies below it."""
    if os.path.isabs(p):
        rel = os.path.relpath(p)
        if not rel.startswith(".."):
            return rel
    return p


def run(cmd, what, env=None):
    print("$ " + " ".join(shlex.quote(show_path(c)) for c in cmd), flush=True)
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, env=env)
    if out.returncode != 0:
        sys.exit("%s failed with status %d" % (what, out.returncode))
    return parse_output(out.stdout, what)


def common_args(args, nq):
    return ["--k", str(args.k), "--nq", str(nq), "--m", str(args.m), "--ef-construction",
            str(args.ef_construction), "--ef-list", args.ef_list, "--repeat", str(args.repeat),
            "--min-time", str(args.min_time)]


def bench_dataset(ds, args, bench):
    n, dim = fvecs_shape(ds["base"])
    nq_avail, _ = fvecs_shape(ds["query"])
    nq = min(nq_avail, args.max_queries) if args.max_queries else nq_avail
    files = ["--base", ds["base"], "--queries", ds["query"], "--gt", ds["gt"], "--name",
             ds["name"], "--metric", ds["metric"]]
    print("\n== %s: %d x %d, %d queries, metric %s, k=%d, M=%d, ef_construction=%d"
          % (ds["name"], n, dim, nq, ds["metric"], args.k, args.m, args.ef_construction),
          flush=True)
    rows, log = [], []
    for rnd in range(args.rounds):
        if args.rounds > 1:
            print("-- round %d of %d" % (rnd + 1, args.rounds), flush=True)
        r, c = bench_round(ds, args, bench, files, nq)
        rows += [dict(x, round=rnd + 1) for x in r]
        log += c
    return {"name": ds["name"], "n": n, "dim": dim, "nq": nq, "metric": ds["metric"],
            "rows": merge_rounds(rows), "raw": rows, "log": log}


def merge_rounds(raw):
    """One row per (engine, param, value): medians over the rounds (peak RSS: max)."""
    groups = {}
    for r in raw:
        groups.setdefault((r["engine"], r["param"], r["value"]), []).append(r)
    out = []
    for rs in groups.values():
        m = {c: rs[0][c] for c in COLUMNS}
        for c, digits in (("recall", 4), ("qps", 1), ("build_s", 3)):
            m[c] = round(statistics.median(x[c] for x in rs), digits)
        m["index_bytes"] = int(statistics.median(x["index_bytes"] for x in rs))
        m["peak_rss_mb"] = max(x["peak_rss_mb"] for x in rs)
        out.append(m)
    return out


def bench_round(ds, args, bench, files, nq):
    rows, log = [], []
    for eng in args.engines:
        if eng == "quarry":
            env = dict(os.environ)
            if args.quarry_simd:
                env["QUARRY_SIMD"] = args.quarry_simd
            cmd = [bench] + files + common_args(args, nq) + [
                "--index", args.index, "--batch", str(args.batch)]
            if args.scratch:
                cmd += ["--dir", args.scratch]
            r, c = run(cmd, "bench_ann", env)
        else:
            cmd = [sys.executable, os.path.join(HERE, "peers.py"), "--engine", eng] + files + \
                common_args(args, nq)
            r, c = run(cmd, "peers.py --engine " + eng)
        rows += r
        log += c
    return rows, log


def curve(rows, engine):
    pts = [r for r in rows if r["engine"] == engine]
    return sorted(pts, key=lambda r: r["value"])


def qps_at(pts, target):
    """(qps, value of the first point reaching target, lower_bound) or None."""
    for i, p in enumerate(pts):
        if p["recall"] >= target:
            if i == 0:
                return p["qps"], p["value"], True
            a = pts[i - 1]
            f = (target - a["recall"]) / (p["recall"] - a["recall"])
            lq = math.log(a["qps"]) + f * (math.log(p["qps"]) - math.log(a["qps"]))
            return math.exp(lq), p["value"], False
    return None


def fmt_qps(q):
    if q is None:
        return "not reached"
    return "%s%.0f (%s %d)" % (">=" if q[2] else "", q[0], "ef", q[1])


def ratio(a, b):
    return "%.2f" % (a / b) if a is not None and b else "-"


def summarize(res, args):
    rows = res["rows"]
    engines = [e for e in args.engines if curve(rows, e)]
    cpus = [float(m.group(1)) for m in
            (re.match(r"# build: wall_s=\S+ cpu_s=(\S+)", ln) for ln in res["log"]) if m]
    build_cpu = statistics.median(cpus) if cpus else None
    print("\n### %s (%d x %d, %d queries, %s, k=%d, M=%d, efC=%d, 1 query thread)"
          % (res["name"], res["n"], res["dim"], res["nq"], res["metric"], args.k, args.m,
             args.ef_construction))
    hdr = ["engine", "index"] + ["QPS @ recall %.2f" % t for t in TARGETS] + [
        "max recall", "build s", "index MB", "peak RSS MB"]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "|".join("---" for _ in hdr) + "|")
    stats = {}
    for e in engines:
        pts = curve(rows, e)
        at = [qps_at(pts, t) for t in TARGETS]
        st = {"at": at, "build": pts[0]["build_s"], "mem": pts[0]["index_bytes"],
              "rss": max(p["peak_rss_mb"] for p in pts)}
        stats[e] = st
        build = "%.2f" % st["build"]
        if e == "quarry" and build_cpu is not None:
            build += " (cpu %.2f)" % build_cpu
        print("| %s | %s | %s | %.4f | %s | %.1f | %.1f |"
              % (e, pts[0]["index"], " | ".join(fmt_qps(q) for q in at),
                 max(p["recall"] for p in pts), build, st["mem"] / 1048576.0, st["rss"]))
    if "quarry" in stats:
        q = stats["quarry"]
        for peer in [e for e in engines if e != "quarry"]:
            p = stats[peer]
            parts = ["QPS@%.2f %s" % (t, ratio(q["at"][i] and q["at"][i][0],
                                               p["at"][i] and p["at"][i][0]))
                     for i, t in enumerate(TARGETS)]
            parts += ["build time %s" % ratio(q["build"], p["build"]),
                      "index memory %s" % ratio(q["mem"], p["mem"]),
                      "peak RSS %s" % ratio(q["rss"], p["rss"])]
            print("quarry/%s: %s" % (peer, ", ".join(parts)))


def plot(res, args, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"quarry": "tab:red", "hnswlib": "tab:blue", "faiss": "tab:green"}
    markers = {"quarry": "o", "hnswlib": "s", "faiss": "^"}
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    lo = 1.0
    for e in args.engines:
        pts = curve(res["rows"], e)
        if not pts:
            continue
        x = [p["recall"] for p in pts]
        y = [p["qps"] for p in pts]
        lo = min(lo, min(x))
        ax.plot(x, y, marker=markers.get(e, "o"), color=colors.get(e), markersize=4,
                linewidth=1.5, label="%s (%s, build %.1f s)"
                % (e, pts[0]["index"], pts[0]["build_s"]))
        for p in pts:
            ax.annotate(str(p["value"]), (p["recall"], p["qps"]), textcoords="offset points",
                        xytext=(3, 3), fontsize=6, color=colors.get(e))
    for t in TARGETS:
        ax.axvline(t, color="grey", linestyle=":", linewidth=1)
        ax.annotate("%.2f" % t, (t, 1), xycoords=("data", "axes fraction"),
                    xytext=(2, -10), textcoords="offset points", fontsize=7, color="grey")
    ax.set_yscale("log")
    ax.set_xlim(max(0.0, min(lo, 0.9) - 0.01), 1.005)
    ax.set_xlabel("recall@%d" % args.k)
    ax.set_ylabel("queries per second (1 thread, log scale)")
    ax.set_title("%s: %d x %d, %s, %d queries, M=%d, efC=%d (labels: ef)"
                 % (res["name"], res["n"], res["dim"], res["metric"], res["nq"], args.m,
                    args.ef_construction), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def default_dir(name):
    p = os.path.normpath(os.path.join(REPO, "..", "shared", "data", name))
    return p if os.path.isdir(p) else None


def need(path):
    if not os.path.isfile(path):
        sys.exit("missing file %s" % path)
    return path


def datasets(args, tmp):
    """Yield the data sets to run, converting Fashion-MNIST on the way."""
    explicit = args.siftsmall or args.fashion_mnist or args.fvecs
    sift = args.siftsmall or (None if explicit else default_dir("siftsmall"))
    fmn = args.fashion_mnist or (None if explicit else default_dir("fashion-mnist"))
    if sift:
        yield {"name": "siftsmall", "metric": "l2",
               "base": need(os.path.join(sift, "siftsmall_base.fvecs")),
               "query": need(os.path.join(sift, "siftsmall_query.fvecs")),
               "gt": need(os.path.join(sift, "siftsmall_groundtruth.ivecs"))}
    if fmn:
        base = os.path.join(tmp, "fashion-mnist_base.fvecs")
        query = os.path.join(tmp, "fashion-mnist_query.fvecs")
        print("converting Fashion-MNIST IDX to .fvecs in a temporary directory", flush=True)
        write_fvecs(base, read_idx_images(need(os.path.join(fmn, "train-images-idx3-ubyte.gz"))))
        write_fvecs(query, read_idx_images(need(os.path.join(fmn, "t10k-images-idx3-ubyte.gz")),
                                           args.max_queries or None))
        yield {"name": "fashion-mnist", "metric": "l2", "base": base, "query": query,
               "gt": need(os.path.join(fmn, "fashion-mnist_groundtruth_l2_top100.ivecs"))}
    if args.fvecs:
        metric = {"angular": "cosine", "euclidean": "l2"}.get(args.metric, args.metric)
        yield {"name": args.name, "metric": metric, "base": need(args.fvecs[0]),
               "query": need(args.fvecs[1]), "gt": need(args.fvecs[2])}
    if not (sift or fmn or args.fvecs):
        sys.exit("no data set given or found (--siftsmall, --fashion-mnist, --fvecs)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--siftsmall", help="siftsmall folder")
    ap.add_argument("--fashion-mnist", help="fashion-mnist folder")
    ap.add_argument("--fvecs", nargs=3, metavar=("BASE", "QUERY", "GT"),
                    help="an ann-benchmarks-style set: base/query .fvecs, ground truth .ivecs")
    ap.add_argument("--name", default="custom", help="name of the --fvecs set")
    ap.add_argument("--metric", default="l2",
                    choices=("l2", "ip", "cosine", "angular", "euclidean"),
                    help="metric of the --fvecs set (angular = cosine)")
    ap.add_argument("--bench-bin", help="bench_ann to run (default: the newest Release "
                    "build*/bench/ann/bench_ann under the repository)")
    ap.add_argument("--out", help="output folder (default: ann-results in bench_ann's "
                    "build tree)")
    ap.add_argument("--scratch", help="parent folder of bench_ann's scratch database "
                    "(default $TMPDIR or /tmp)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="subset, comma-separated")
    ap.add_argument("--index", default="hnsw", choices=("hnsw", "flat", "ivfpq"),
                    help="Quarry's index kind")
    ap.add_argument("--quarry-simd", choices=("scalar", "avx2", "avx512"),
                    help="pin Quarry's distance kernels (QUARRY_SIMD)")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef-list", default="10,16,24,32,48,64,96,128,192,256")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--max-queries", type=int, default=1000, help="0 = all")
    ap.add_argument("--repeat", type=int, default=3, help="timings per point (median)")
    ap.add_argument("--min-time", type=float, default=0.2,
                    help="seconds each timing runs at least")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the engines this many times in turn and keep per-point "
                    "medians (builds included), against bursts of load")
    ap.add_argument("--batch", type=int, default=10000, help="rows per Quarry import batch")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args()
    args.engines = [e for e in args.engines.split(",") if e]
    if args.rounds < 1 or args.repeat < 1 or args.max_queries < 0:
        sys.exit("--rounds and --repeat must be >= 1, --max-queries >= 0")
    if not args.engines or set(args.engines) - set(ENGINES):
        sys.exit("--engines takes a subset of %s" % ",".join(ENGINES))

    bench = find_bench(args.bench_bin) if "quarry" in args.engines else None
    out = args.out or (os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(bench))),
                                    "ann-results") if bench else "ann-results")
    os.makedirs(out, exist_ok=True)
    if bench:
        print("bench_ann: %s (%s)" % (show_path(bench), build_type(bench)))
    print("results: %s" % show_path(os.path.abspath(out)))

    results = []
    with tempfile.TemporaryDirectory(prefix="quarry-ann-data-") as tmp:
        for ds in datasets(args, tmp):
            res = bench_dataset(ds, args, bench)
            results.append(res)
            stem = os.path.join(out, res["name"])
            with open(stem + ".csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
                w.writeheader()
                w.writerows(res["rows"])
            if args.rounds > 1:
                with open(stem + ".rounds.csv", "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=COLUMNS + ["round"], lineterminator="\n")
                    w.writeheader()
                    w.writerows(res["raw"])
            with open(stem + ".log", "w") as f:
                f.write("\n".join(res["log"]) + "\n")
            if not args.no_plot:
                plot(res, args, stem + ".png")
            print("wrote %s.csv, .log%s" % (show_path(os.path.abspath(stem)),
                                            "" if args.no_plot else ", .png"), flush=True)

    print("\n## Summary (QPS: median of %d timings%s, interpolated at the target recall; "
          "'>=' = the first ef already reaches it)"
          % (args.repeat, " x %d rounds" % args.rounds if args.rounds > 1 else ""))
    for res in results:
        summarize(res, args)


if __name__ == "__main__":
    main()
