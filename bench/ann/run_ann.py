#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ANN benchmark: Quarry vs hnswlib / FAISS (HNSW, IVF-PQ): recall, QPS, build, memory.

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
memory, and the ratios quarry/hnswlib and quarry/faiss; the summary is also
written to OUT/<dataset>.summary.md. With --index ivfpq the files are named
OUT/<dataset>-ivfpq.* instead.

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

IVF-PQ (--index ivfpq): Quarry's IVF-PQ against FAISS IndexIVFPQ (8-bit
codes) and, for re-ranking, IndexRefineFlat around it (peers.py --index
ivfpq), engines quarry and faiss. For every --pq-m value each engine builds
one index with the same nlist and m (Quarry: import, then
quarry_collection_train; FAISS: train + add, both on --train-threads = 2
threads, the threads Quarry trains with) and sweeps every --refine factor
(1 = PQ distances only; R > 1 = re-rank R*k candidates exactly) times every
--nprobe on it, one query thread. Defaults per data set: siftsmall nlist 100,
m 16 and 32; fashion-mnist nlist 256, m 16 and 56 (FAISS needs m to divide
the dimension, 784); others Quarry's nlist rule and the largest divisor of d
up to min(d/4, 64). The index column reads ivfpq-nl<L>-m<M>[+refine<R>]. The
summary gives, per (m, refine): recall and QPS of both engines at each nprobe
with the recall difference (target: within 0.01), QPS at the recall levels
both reach and its ratio, training time (Quarry: the quarry_collection_train
call, which trains, encodes every row and checkpoints; FAISS: train and add
apart) and the bytes per vector of codes + ids. --faiss-blas DIR puts DIR
first on FAISS's LD_LIBRARY_PATH (Debian's default libblas3 is the
unoptimised reference BLAS, which FAISS's k-means uses; e.g. an unpacked
libopenblas0-openmp).

K-means seeds (--seeds N, IVF-PQ only). The recall at small nprobe depends
on the coarse partition, i.e. on the k-means seed of each engine. --seeds N
(N > 1) trains one index per seed 1..N in each engine process (bench_ann
--seeds: ivf_seed; peers.py --seeds: cp.seed and pq.cp.seed), and --seeds
S1,S2,... takes the seeds themselves; rows carry "@s<S>" at the end of the
index column. The summary then gives, per index and nprobe, the mean recall
+- its standard deviation over the seeds for each engine, the difference of
the means and its standard error, and the "within 0.01" verdict is taken on
the difference of the means. QPS per nprobe is the median over the seeds,
and QPS at equal recall is interpolated on the curve (mean recall, median
QPS); training time and bytes per vector are medians over every seed and
round. --seeds 1 (the default) passes no seed: each engine's own default
(Quarry: derived from the collection; FAISS: 1234), as for speed runs.

Timing: every engine answers one query at a time on one thread; each sweep
point is timed --repeat times (each timing at least --min-time seconds) and
the median is kept. The peers' Debian builds may be generic (SSE-only)
builds; their compile options are in the .log. QUARRY_SIMD (via
--quarry-simd) pins Quarry's distance kernels to one ISA for a like-for-like
comparison of the graph search itself.

Example:  python3 bench/ann/run_ann.py
          python3 bench/ann/run_ann.py --index flat --max-queries 200
          python3 bench/ann/run_ann.py --index ivfpq --rounds 3
          python3 bench/ann/run_ann.py --fvecs sift_base.fvecs sift_query.fvecs \\
                  sift_groundtruth.ivecs --name sift1m --out /tmp/ann

Needs numpy, hnswlib, faiss and matplotlib importable by the interpreter
(Debian: python3-numpy python3-hnswlib python3-faiss python3-matplotlib, with
the system /usr/bin/python3).
"""
import argparse
import contextlib
import csv
import glob
import gzip
import io
import json
import math
import os
import re
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile
import threading

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
COLUMNS = ["engine", "dataset", "index", "param", "value", "recall", "qps", "build_s",
           "peak_rss_mb", "index_bytes"]
ENGINES = ("quarry", "hnswlib", "faiss")
TARGETS = (0.95, 0.99)
# IVF-PQ: recall levels at which QPS is compared (those both engines reach)
IVF_TARGETS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
# per data set: nlist and the m values (code bytes per vector) to compare
IVF_DEFAULTS = {"siftsmall": (100, [16, 32]), "fashion-mnist": (256, [16, 56])}


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
    """Run a benchmark program: (rows, comments). stderr is passed through as
    it comes; the engine's own notices on it ("quarry: ...", e.g. the training
    time) are kept with the comments as "# stderr: ..."."""
    print("$ " + " ".join(shlex.quote(show_path(c)) for c in cmd), flush=True)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    notes = []

    def pump():
        for line in proc.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            if line.startswith("quarry: "):
                notes.append("# stderr: " + line.rstrip("\n"))

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    stdout = proc.stdout.read()
    proc.wait()
    t.join()
    if proc.returncode != 0:
        sys.exit("%s failed with status %d" % (what, proc.returncode))
    rows, comments = parse_output(stdout, what)
    return rows, comments + notes


def common_args(args, nq):
    return ["--k", str(args.k), "--nq", str(nq), "--m", str(args.m), "--ef-construction",
            str(args.ef_construction), "--ef-list", args.ef_list, "--repeat", str(args.repeat),
            "--min-time", str(args.min_time)]


def ivf_geometry(ds, dim, n, args):
    """(nlist, [m, ...]) for a data set: the options, else IVF_DEFAULTS, else
    Quarry's nlist rule and the largest divisor of dim up to min(dim/4, 64)."""
    nlist, ms = IVF_DEFAULTS.get(ds["name"], (0, None))
    if args.nlist:
        nlist = args.nlist
    if not nlist:
        nlist = max(16, min(int(4 * math.sqrt(n)), n // 39))
    if args.pq_m:
        ms = [int(x) for x in args.pq_m.split(",") if x]
    if not ms:
        top = max(1, min(dim // 4, 64))
        ms = [max(m for m in range(1, top + 1) if dim % m == 0)]
    bad = [m for m in ms if m <= 0 or m > dim or ("faiss" in args.engines and dim % m)]
    if bad:
        sys.exit("%s: --pq-m %s: m must be in 1..%d%s" % (
            ds["name"], ",".join(map(str, bad)), dim,
            " and divide %d for FAISS" % dim if "faiss" in args.engines else ""))
    return nlist, ms


def bench_dataset(ds, args, bench):
    n, dim = fvecs_shape(ds["base"])
    nq_avail, _ = fvecs_shape(ds["query"])
    nq = min(nq_avail, args.max_queries) if args.max_queries else nq_avail
    files = ["--base", ds["base"], "--queries", ds["query"], "--gt", ds["gt"], "--name",
             ds["name"], "--metric", ds["metric"]]
    ivf = None
    if args.index == "ivfpq":
        ivf = ivf_geometry(ds, dim, n, args)
        print("\n== %s: %d x %d, %d queries, metric %s, k=%d, IVF-PQ nlist=%d, m=%s, refine=%s"
              % (ds["name"], n, dim, nq, ds["metric"], args.k, ivf[0],
                 ",".join(map(str, ivf[1])), args.refine), flush=True)
    else:
        print("\n== %s: %d x %d, %d queries, metric %s, k=%d, M=%d, ef_construction=%d"
              % (ds["name"], n, dim, nq, ds["metric"], args.k, args.m, args.ef_construction),
              flush=True)
    rows, log, builds = [], [], []
    for rnd in range(args.rounds):
        if args.rounds > 1:
            print("-- round %d of %d" % (rnd + 1, args.rounds), flush=True)
        r, c, b = bench_round(ds, args, bench, files, nq, ivf)
        rows += [dict(x, round=rnd + 1) for x in r]
        log += c
        builds += [dict(x, round=rnd + 1) for x in b]
    return {"name": ds["name"], "n": n, "dim": dim, "nq": nq, "metric": ds["metric"],
            "rows": merge_rounds(rows), "raw": rows, "log": log, "builds": builds,
            "ivf": ivf}


SEED_RE = re.compile(r"@s(\d+)$")


def seed_of(index):
    """ivfpq-nl100-m16+refine10@s3 -> 3 (None without a seed suffix)"""
    m = SEED_RE.search(index)
    return int(m.group(1)) if m else None


def strip_seed(index):
    """ivfpq-nl100-m16+refine10@s3 -> ivfpq-nl100-m16+refine10"""
    return SEED_RE.sub("", index)


def seed_list(spec):
    """--seeds: "N" = seeds 1..N (1 = the engines' defaults: None), "S1,S2,..." = those."""
    try:
        if "," in spec:
            v = [int(x) for x in spec.split(",") if x]
        else:
            n = int(spec)
            v = list(range(1, n + 1)) if n > 1 else [None] if n == 1 else []
    except ValueError:
        v = []
    if not v or any(x is not None and x < 0 for x in v) or len(set(v)) != len(v):
        sys.exit("bad --seeds %r: a count N >= 1 or distinct seeds S1,S2,..." % spec)
    return v


def merge_seeds(rows):
    """One row per (engine, index without seed, param, value) over the seeds:
    recall = mean (recall_std: sample standard deviation, nseeds: count), qps
    and qps_cpu = medians, build_s = median, index_bytes = median, peak RSS =
    max. Rows without a seed suffix pass through (nseeds 1)."""
    groups = {}
    for r in rows:
        groups.setdefault((r["engine"], strip_seed(r["index"]), r["param"], r["value"]),
                          []).append(r)
    out = []
    for (e, ix, p, v), rs in groups.items():
        m = dict(rs[0], index=ix)
        rec = [x["recall"] for x in rs]
        m["recall"] = statistics.mean(rec)
        m["recall_std"] = statistics.stdev(rec) if len(rec) > 1 else 0.0
        m["nseeds"] = len(rs)
        m["seed_recalls"] = rec
        m["qps"] = statistics.median(x["qps"] for x in rs)
        cpu = [x["qps_cpu"] for x in rs if "qps_cpu" in x]
        if len(cpu) == len(rs):
            m["qps_cpu"] = statistics.median(cpu)
        else:
            m.pop("qps_cpu", None)
        m["build_s"] = statistics.median(x["build_s"] for x in rs)
        m["index_bytes"] = int(statistics.median(x["index_bytes"] for x in rs))
        m["peak_rss_mb"] = max(x["peak_rss_mb"] for x in rs)
        out.append(m)
    return out


def split_seeds(rows, comments):
    """A multi-seed run's output as [(rows, comments)] per seed, in run order.
    A seed's comments run from its "# seed:" line to the next; the engine's
    "IVF-PQ trained" notices (collected at the end) go to the seeds in order."""
    seeds = []
    for ln in comments:
        m = re.match(r"# seed: (\d+)", ln)
        if m:
            seeds.append(int(m.group(1)))
    if not seeds:
        return [(rows, comments)]
    parts, cur = [], None
    trained = [ln for ln in comments if "IVF-PQ trained" in ln]
    for ln in comments:
        if ln.startswith("# seed:"):
            cur = []
            parts.append(cur)
        elif cur is not None and "IVF-PQ trained" not in ln:
            cur.append(ln)
    out = []
    for i, (sd, cm) in enumerate(zip(seeds, parts)):
        rs = [r for r in rows if seed_of(r["index"]) == sd]
        if i < len(trained):
            cm = cm + [trained[i]]
        if rs:
            out.append((rs, cm))
    return out


def merge_rounds(raw):
    """One row per (engine, index, param, value): medians over the rounds (peak RSS: max)."""
    groups = {}
    for r in raw:
        groups.setdefault((r["engine"], r["index"], r["param"], r["value"]), []).append(r)
    out = []
    for rs in groups.values():
        m = {c: rs[0][c] for c in COLUMNS}
        for c, digits in (("recall", 4), ("qps", 1), ("build_s", 3)):
            m[c] = round(statistics.median(x[c] for x in rs), digits)
        m["index_bytes"] = int(statistics.median(x["index_bytes"] for x in rs))
        cpu = [x["qps_cpu"] for x in rs if "qps_cpu" in x]
        if cpu:
            m["qps_cpu"] = round(statistics.median(cpu), 1)
        m["peak_rss_mb"] = max(x["peak_rss_mb"] for x in rs)
        out.append(m)
    return out


def build_info(engine, rows, comments):
    """Training / build figures of one IVF-PQ run from its comment lines."""
    b = {"engine": engine, "config": base_config(rows[0]["index"]),
         "seed": seed_of(rows[0]["index"]), "build_s": rows[0]["build_s"]}
    for ln in comments:
        if ln.startswith("# train_s=") or ln.startswith("# ivf:") or \
                ln.startswith("# refine:") or ln.startswith("# search:"):
            key = ln[2:].split("=")[0].split(":")[0]
            for k, v in re.findall(r"(\w+)=([0-9.]+)\b", ln):
                b[(key + "." + k) if key in ("refine", "search") else k] = float(v)
        m = re.search(r"IVF-PQ trained .* in ([0-9.]+) s", ln)
        if m:
            b["trained_s"] = float(m.group(1))
    return b


def attach_cpu_qps(rows, comments):
    """Copy "# cpu_qps: index=I param=V qps_cpu=Q" figures onto their rows."""
    cpu = {}
    for ln in comments:
        m = re.match(r"# cpu_qps: index=(\S+) (\w+)=(\d+) qps_cpu=([0-9.]+)", ln)
        if m:
            cpu[(m.group(1), m.group(2), int(m.group(3)))] = float(m.group(4))
    for r in rows:
        q = cpu.get((r["index"], r["param"], r["value"]))
        if q is not None:
            r["qps_cpu"] = q


def bench_round(ds, args, bench, files, nq, ivf):
    """One run of every engine (for IVF-PQ: of every engine for every m)."""
    rows, log, builds = [], [], []
    configs = [None] if not ivf else [(ivf[0], m) for m in ivf[1]]
    for cfg in configs:
        for eng in args.engines:
            extra = []
            if cfg:
                extra = ["--index", "ivfpq", "--nlist", str(cfg[0]), "--pq-m", str(cfg[1]),
                         "--nprobe-list", args.nprobe_list, "--refine", args.refine]
                if args.seed_list != [None]:
                    extra += ["--seeds", ",".join(map(str, args.seed_list))]
            if eng == "quarry":
                env = dict(os.environ)
                if args.quarry_simd:
                    env["QUARRY_SIMD"] = args.quarry_simd
                cmd = [bench] + files + common_args(args, nq) + (extra or [
                    "--index", args.index]) + ["--batch", str(args.batch)]
                if args.scratch:
                    cmd += ["--dir", args.scratch]
                r, c = run(cmd, "bench_ann", env)
            else:
                env = None
                if cfg:
                    extra += ["--train-threads", str(args.train_threads)]
                    if args.coarse_niter:
                        extra += ["--coarse-niter", str(args.coarse_niter)]
                    if args.faiss_blas:
                        env = dict(os.environ)
                        env["LD_LIBRARY_PATH"] = os.pathsep.join(
                            x for x in (args.faiss_blas, env.get("LD_LIBRARY_PATH")) if x)
                cmd = [sys.executable, os.path.join(HERE, "peers.py"), "--engine", eng] + \
                    files + common_args(args, nq) + extra
                r, c = run(cmd, "peers.py --engine " + eng, env)
            attach_cpu_qps(r, c)
            rows += r
            log += c
            if cfg:
                builds += [build_info(eng, rs, cs) for rs, cs in split_seeds(r, c)]
    return rows, log, builds


def curve(rows, engine, index=None):
    pts = [r for r in rows if r["engine"] == engine and (index is None or r["index"] == index)]
    return sorted(pts, key=lambda r: r["value"])


def base_config(index):
    """ivfpq-nl100-m16+refine10[@s3] -> ivfpq-nl100-m16"""
    return strip_seed(index).split("+", 1)[0]


def refine_of(index):
    m = re.search(r"\+refine(\d+)$", strip_seed(index))
    return int(m.group(1)) if m else 1


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


def fmt_qps(q, param="ef"):
    if q is None:
        return "not reached"
    return "%s%.0f (%s %d)" % (">=" if q[2] else "", q[0], param, q[1])


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


def med(builds, key):
    v = [b[key] for b in builds if key in b]
    return statistics.median(v) if v else None


def fmt_s(v):
    return "%.2f" % v if v is not None else "-"


def summarize_ivf(res, args):
    """Per (m, refine): recall and QPS per nprobe side by side, QPS at equal
    recall, training time and bytes per vector."""
    seed_rows, builds = res["rows"], res["builds"]
    rows = merge_seeds(seed_rows)  # over the seeds (as they are without --seeds)
    nseeds = max(r["nseeds"] for r in rows)
    seeds = sorted({seed_of(r["index"]) for r in seed_rows} - {None})
    nlist = res["ivf"][0]
    rounds = " (medians of %d rounds)" % args.rounds if args.rounds > 1 else ""
    print("\n### %s (%d x %d, %d queries, %s, k=%d, IVF-PQ nlist=%d, 8-bit codes, "
          "1 query thread%s)" % (res["name"], res["n"], res["dim"], res["nq"], res["metric"],
                                 args.k, nlist,
                                 ", k-means seeds %s" % ",".join(map(str, seeds))
                                 if seeds else ""))
    if nseeds > 1:
        print("\n%d k-means seeds per engine: recall = mean over the seeds (+- sample standard "
              "deviation), diff = difference of the means (quarry - faiss) +- its standard "
              "error; QPS = median over the seeds; QPS at equal recall on the curve (mean "
              "recall, median QPS); build figures: medians over all seeds%s."
              % (nseeds, " and rounds" if args.rounds > 1 else ""))
    configs = []
    for r in rows:
        if base_config(r["index"]) not in configs:
            configs.append(base_config(r["index"]))
    verdicts = []
    print("\nBuild%s. Quarry: train s = the quarry_collection_train call (k-means, encoding "
          "every row, checkpoint; 'before ckpt' = the engine's own figure without the "
          "checkpoint); FAISS: train() and add() apart, %d threads each."
          % (rounds, args.train_threads))
    print("\n| index | engine | train s | add s | train+add s | CPU s | bytes/vector "
          "(codes+ids) | index MB |")
    print("|---|---|---|---|---|---|---|---|")
    train_ratio = {}
    for cfg in configs:
        per = {}
        for e in args.engines:
            bs = [b for b in builds if b["engine"] == e and b["config"] == cfg]
            if not bs:
                continue
            pts = [r for r in seed_rows if r["engine"] == e and base_config(r["index"]) == cfg]
            # the first seed's build (later seeds' RSS growth reuses freed memory)
            pts = [p for p in pts if seed_of(p["index"]) == seed_of(pts[0]["index"])]
            mem = min(p["index_bytes"] for p in pts) / 1048576.0
            if e == "quarry":
                tr, ad = med(bs, "train_s"), None
                total = tr
                cpu = med(bs, "cpu_s")
                trs = fmt_s(tr)
                if med(bs, "trained_s") is not None:
                    trs += " (before ckpt %.2f)" % med(bs, "trained_s")
                ads = "(in train)"
            else:
                tr, ad = med(bs, "train_s"), med(bs, "add_s")
                total = tr + ad if tr is not None and ad is not None else None
                cpu, trs, ads = None, fmt_s(tr), fmt_s(ad)
            bpv = med(bs, "bytes_per_vector")
            alloc = med(bs, "alloc_model_bytes_per_vector")
            per[e] = {"train": tr, "total": total, "bpv": bpv}
            print("| %s | %s | %s | %s | %s | %s | %s%s | %.1f |"
                  % (cfg, e, trs, ads, fmt_s(total), fmt_s(cpu),
                     "%.2f" % bpv if bpv is not None else "-",
                     " (allocated ~%.2f)" % alloc if alloc is not None else "", mem))
        if "quarry" in per and "faiss" in per:
            q, f = per["quarry"], per["faiss"]
            train_ratio[cfg] = (q["total"] / f["total"] if q["total"] and f["total"] else None,
                                q["total"] / f["train"] if q["total"] and f["train"] else None,
                                q["bpv"], f["bpv"])
    for cfg, (r1, r2, qb, fb) in train_ratio.items():
        m = int(re.search(r"-m(\d+)$", cfg).group(1))
        print("%s: quarry/faiss training time %s against FAISS train+add (target <= 1.5), "
              "%s against FAISS train alone. Bytes/vector: quarry %.2f (ivf_code_bytes / "
              "ivf_rows: allocated list capacity; payload m + 4-byte id = %d), faiss %.2f "
              "(list sizes * (m + 8-byte id) = %d; its std::vector lists allocate about the "
              "'allocated' figure above)"
              % (cfg, ratio(r1, 1), ratio(r2, 1), qb or 0, m + 4, fb or 0, m + 8))

    indexes = []
    for r in rows:
        if r["index"] not in indexes:
            indexes.append(r["index"])
    for ix in indexes:
        q, f = curve(rows, "quarry", ix), curve(rows, "faiss", ix)
        rf = refine_of(ix)
        print("\n#### %s: %s" % (ix, "PQ distances only" if rf <= 1 else
                                  "%d*k PQ candidates re-ranked exactly" % rf))
        if not q or not f:
            continue
        fv = {p["value"]: p for p in f}
        multi = max(p["nseeds"] for p in q + f) > 1
        if multi:
            print("\n| nprobe | recall quarry (mean +- sd, n) | recall faiss (mean +- sd, n) "
                  "| diff of means +- se | QPS quarry | QPS faiss | QPS ratio | "
                  "CPU-time QPS ratio |")
        else:
            print("\n| nprobe | recall quarry | recall faiss | diff | QPS quarry | QPS faiss | "
                  "QPS ratio | CPU-time QPS ratio |")
        print("|---|---|---|---|---|---|---|---|")
        worst = (0.0, None, None)
        for p in q:
            o = fv.get(p["value"])
            if not o:
                continue
            d = p["recall"] - o["recall"]
            se = math.sqrt(p["recall_std"] ** 2 / p["nseeds"] +
                           o["recall_std"] ** 2 / o["nseeds"]) if multi else None
            if abs(d) > abs(worst[0]):
                worst = (d, p["value"], se)
            if multi:
                rq = "%.4f +- %.4f (%d)" % (p["recall"], p["recall_std"], p["nseeds"])
                rf_ = "%.4f +- %.4f (%d)" % (o["recall"], o["recall_std"], o["nseeds"])
                ds = "%+.4f +- %.4f" % (d, se)
            else:
                rq, rf_, ds = "%.4f" % p["recall"], "%.4f" % o["recall"], "%+.4f" % d
            print("| %d | %s | %s | %s | %.0f | %.0f | %.2f | %s |"
                  % (p["value"], rq, rf_, ds, p["qps"], o["qps"],
                     p["qps"] / o["qps"], ratio(p.get("qps_cpu"), o.get("qps_cpu"))))
        top = min(max(p["recall"] for p in q), max(p["recall"] for p in f))
        levels = [t for t in IVF_TARGETS if t <= top]
        qc = [dict(p, qps=p["qps_cpu"]) for p in q if "qps_cpu" in p]
        fc = [dict(p, qps=p["qps_cpu"]) for p in f if "qps_cpu" in p]
        cpu_ok = len(qc) == len(q) and len(fc) == len(f)
        print("\n| recall | QPS quarry | QPS faiss | quarry/faiss | CPU-time quarry/faiss |")
        print("|---|---|---|---|---|")
        ratios, ratios_cpu = [], []
        for t in levels:
            a, b = qps_at(q, t), qps_at(f, t)
            if a and b and a[2] and b[2]:
                continue  # both only bounded below: nothing to compare
            rt = a[0] / b[0] if a and b else None
            ac, bc = (qps_at(qc, t), qps_at(fc, t)) if cpu_ok else (None, None)
            bound = a[2] or b[2]
            if rt is not None and not bound:
                ratios.append(rt)
                if ac and bc:
                    ratios_cpu.append(ac[0] / bc[0])
            print("| %.2f | %s | %s | %s%s | %s |"
                  % (t, fmt_qps(a, "nprobe"), fmt_qps(b, "nprobe"), ratio(a[0], b[0]),
                     " (bound)" if bound else "",
                     ratio(ac[0], bc[0]) + (" (bound)" if ac[2] or bc[2] else "")
                     if ac and bc else "-"))
        verdicts.append((ix, worst, ratios, ratios_cpu))
    print("\nTargets (recall within 0.01 of FAISS at equal nlist, m, nprobe -- diff = quarry - "
          "faiss%s, largest |diff| over the nprobe sweep; QPS at equal recall >= 1.0x, "
          "'(bound)' levels left out; training <= 1.5x FAISS train+add):"
          % (" of the recalls averaged over %d k-means seeds" % nseeds if nseeds > 1 else ""))
    print("\n| index | max recall diff%s (nprobe) | QPS ratio at equal recall (min / median / max) "
          "| same, CPU time | training ratio | bytes/vector quarry / faiss |"
          % (" of means +- se" if nseeds > 1 else ""))
    print("|---|---|---|---|---|---|")

    def spread(rs):
        if not rs:
            return "-"
        return "%.2f / %.2f / %.2f%s" % (min(rs), statistics.median(rs), max(rs),
                                         "" if min(rs) >= 1.0 else " MISSED")

    for ix, worst, ratios, ratios_cpu in verdicts:
        tr = train_ratio.get(base_config(ix))
        print("| %s | %+.4f%s (%s)%s | %s | %s | %s | %s |"
              % (ix, worst[0], " +- %.4f" % worst[2] if worst[2] is not None else "",
                 worst[1], " MISSED" if worst[0] < -0.01 else
                 " (quarry higher)" if worst[0] > 0.01 else "", spread(ratios),
                 spread(ratios_cpu),
                 ratio(tr[0], 1) + ("" if tr[0] is None or tr[0] <= 1.5 else " MISSED")
                 if tr else "-",
                 "%.2f / %.2f" % (tr[2], tr[3]) if tr and tr[2] and tr[3] else "-"))
    if nseeds == 1:
        print("\nOne k-means seed per engine: at small nprobe the recall difference is within "
              "the seed-to-seed spread of the coarse partition; judge the recall target on a "
              "run with --seeds 5.")


def plot_ivf(res, args, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = merge_seeds(res["rows"])  # mean recall, median QPS over the seeds
    nseeds = max(r["nseeds"] for r in rows)
    configs = []
    for r in rows:
        if base_config(r["index"]) not in configs:
            configs.append(base_config(r["index"]))
    colors = {"quarry": "tab:red", "faiss": "tab:green"}
    styles = ["-", "--", ":", "-."]
    fig, axes = plt.subplots(1, len(configs), figsize=(7 * len(configs), 5.5), dpi=120,
                             squeeze=False)
    for ax, cfg in zip(axes[0], configs):
        ixs = []
        for r in rows:
            if base_config(r["index"]) == cfg and r["index"] not in ixs:
                ixs.append(r["index"])
        for e in args.engines:
            for si, ix in enumerate(ixs):
                pts = curve(rows, e, ix)
                if not pts:
                    continue
                rf = refine_of(ix)
                ax.plot([p["recall"] for p in pts], [p["qps"] for p in pts],
                        marker="o" if e == "quarry" else "^", markersize=4,
                        linestyle=styles[si % len(styles)], color=colors.get(e),
                        label="%s, %s (build %.1f s)" % (
                            e, "refine %d" % rf if rf > 1 else "PQ only", pts[0]["build_s"]))
                for p in pts:
                    ax.annotate(str(p["value"]), (p["recall"], p["qps"]),
                                textcoords="offset points", xytext=(3, 3), fontsize=6,
                                color=colors.get(e))
        ax.set_yscale("log")
        ax.set_xlabel("recall@%d" % args.k)
        ax.set_ylabel("queries per second (1 thread, log scale)")
        ax.set_title("%s: %s (labels: nprobe%s)" % (
            res["name"], cfg, "; mean recall, median QPS over %d seeds" % nseeds
            if nseeds > 1 else ""), fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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
    ap.add_argument("--engines", help="subset, comma-separated (default: %s; quarry,faiss "
                    "for --index ivfpq)" % ",".join(ENGINES))
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
    ap.add_argument("--nlist", type=int, default=0,
                    help="IVF-PQ lists (0 = per data set: siftsmall 100, fashion-mnist 256)")
    ap.add_argument("--pq-m", default="",
                    help="IVF-PQ code bytes per vector, comma-separated (default per data "
                    "set: siftsmall 16,32, fashion-mnist 16,56)")
    ap.add_argument("--refine", default="1,10",
                    help="IVF-PQ re-ranking factors to sweep (1 = off)")
    ap.add_argument("--nprobe-list", default="1,2,4,8,16,32,64,128")
    ap.add_argument("--train-threads", type=int, default=2,
                    help="FAISS threads for IVF-PQ train and add (Quarry trains on 2)")
    ap.add_argument("--coarse-niter", type=int, default=0,
                    help="FAISS coarse k-means iterations (0 = FAISS's default, 10)")
    ap.add_argument("--faiss-blas", metavar="DIR",
                    help="put DIR first on FAISS's LD_LIBRARY_PATH (e.g. an unpacked "
                    "libopenblas0-openmp's openblas-openmp folder)")
    ap.add_argument("--seeds", default="1",
                    help="IVF-PQ k-means seeds per engine: N = seeds 1..N (1 = each engine's "
                    "default seed, no suffix), or S1,S2,...; the recall verdict uses the "
                    "mean over the seeds")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--resummarize", nargs="+", metavar="JSON",
                    help="print the summary (and rewrite .summary.md) of earlier runs from "
                    "their OUT/<stem>.json, with this run's --index/--engines, run nothing")
    args = ap.parse_args()
    if args.engines is None:
        args.engines = "quarry,faiss" if args.index == "ivfpq" else ",".join(ENGINES)
    args.engines = [e for e in args.engines.split(",") if e]
    if args.index == "ivfpq" and "hnswlib" in args.engines:
        sys.exit("--index ivfpq compares quarry and faiss (hnswlib has no IVF-PQ)")
    if args.rounds < 1 or args.repeat < 1 or args.max_queries < 0:
        sys.exit("--rounds and --repeat must be >= 1, --max-queries >= 0")
    if not args.engines or set(args.engines) - set(ENGINES):
        sys.exit("--engines takes a subset of %s" % ",".join(ENGINES))
    args.seed_list = seed_list(args.seeds)
    if args.seed_list != [None] and args.index != "ivfpq":
        sys.exit("--seeds applies to --index ivfpq")

    bench = find_bench(args.bench_bin) if "quarry" in args.engines and not args.resummarize \
        else None
    out = args.out or (os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(bench))),
                                    "ann-results") if bench else "ann-results")
    if not args.resummarize:
        os.makedirs(out, exist_ok=True)
        if bench:
            print("bench_ann: %s (%s)" % (show_path(bench), build_type(bench)))
        print("results: %s" % show_path(os.path.abspath(out)))

    results = []
    if args.resummarize:
        for path in args.resummarize:
            with open(path) as f:
                saved = json.load(f)
            res = saved["result"]
            res["stem"] = os.path.splitext(path)[0]
            for key in ("index", "engines", "rounds", "repeat", "k", "train_threads", "m",
                        "ef_construction"):
                setattr(args, key, saved["args"][key])
            args.seed_list = saved["args"].get("seed_list", [None])
            results.append(res)
    with tempfile.TemporaryDirectory(prefix="quarry-ann-data-") as tmp:
        for ds in ([] if args.resummarize else datasets(args, tmp)):
            res = bench_dataset(ds, args, bench)
            results.append(res)
            stem = os.path.join(out, res["name"] + ("-ivfpq" if args.index == "ivfpq" else ""))
            res["stem"] = stem
            with open(stem + ".csv", "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n",
                                   extrasaction="ignore")
                w.writeheader()
                w.writerows(res["rows"])
            if args.rounds > 1:
                with open(stem + ".rounds.csv", "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=COLUMNS + ["round"], lineterminator="\n",
                                       extrasaction="ignore")
                    w.writeheader()
                    w.writerows(res["raw"])
            with open(stem + ".log", "w") as f:
                f.write("\n".join(res["log"]) + "\n")
            with open(stem + ".json", "w") as f:
                json.dump({"args": vars(args), "result": res}, f)
            if not args.no_plot:
                (plot_ivf if args.index == "ivfpq" else plot)(res, args, stem + ".png")
            print("wrote %s.csv, .log%s" % (show_path(os.path.abspath(stem)),
                                            "" if args.no_plot else ", .png"), flush=True)

    param = "nprobe" if args.index == "ivfpq" else "ef"
    print("\n## Summary (QPS: median of %d timings%s, interpolated at the target recall; "
          "'>=' = the first %s already reaches it)"
          % (args.repeat, " x %d rounds" % args.rounds if args.rounds > 1 else "", param))
    for res in results:
        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            (summarize_ivf if args.index == "ivfpq" else summarize)(res, args)
        sys.stdout.write(text.getvalue())
        with open(res["stem"] + ".summary.md", "w") as f:
            f.write(text.getvalue().lstrip("\n"))


if __name__ == "__main__":
    main()
