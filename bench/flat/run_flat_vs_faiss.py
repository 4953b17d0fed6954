#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Single-query exact-search latency: Quarry's flat scan vs FAISS IndexFlatL2.

Runs bench_flat (the C benchmark of index/flat) and FAISS IndexFlatL2 on the
same base vectors and the same queries, in the same run, alternating the two
for --repeat rounds, one thread each, one query per search call, k = 10. Prints
the median microseconds per query of each and the ratio quarry / faiss.

Data sets (each optional; defaults are looked up in ../shared/data next to the
repository root):
  --siftsmall DIR      siftsmall_{base,query}.fvecs, siftsmall_groundtruth.ivecs
  --fashion-mnist DIR  {train,t10k}-images-idx3-ubyte.gz and
                       fashion-mnist_groundtruth_l2_top100.ivecs; the IDX .gz
                       files are decompressed to temporary .fvecs first.

FAISS is timed through its Python API (index.search per query), so its figure
includes the per-call Python/SWIG overhead; that overhead is measured on a
tiny index and printed alongside, so it can be subtracted by eye. FAISS's
compile options are printed too: a distribution build may be the generic
(non-AVX2) one, in which case --isa scalar or --isa avx2 gives the closer
like-for-like comparison of the scan itself.

Example:  python3 bench/flat/run_flat_vs_faiss.py --repeat 5
          python3 bench/flat/run_flat_vs_faiss.py --siftsmall DIR --fashion-mnist DIR \
                  --isa avx2 --bench build/bench/flat/bench_flat

Needs numpy and faiss importable by the interpreter (Debian: python3-numpy,
python3-faiss with /usr/bin/python3).
"""
import argparse
import glob
import gzip
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

try:
    import faiss
except ImportError:
    sys.exit("faiss is not importable by %s (Debian: python3-faiss, run with the system "
             "python3)" % sys.executable)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_fvecs(path):
    a = np.fromfile(path, dtype=np.int32)
    d = int(a[0])
    return a.reshape(-1, d + 1)[:, 1:].view(np.float32).copy()


def read_ivecs(path):
    a = np.fromfile(path, dtype=np.int32)
    d = int(a[0])
    return a.reshape(-1, d + 1)[:, 1:].copy()


def write_fvecs(path, x):
    n, d = x.shape
    rec = np.empty((n, d + 1), dtype=np.float32)
    rec[:, 0] = np.array([d], dtype=np.int32).view(np.float32)[0]
    rec[:, 1:] = x
    rec.tofile(path)


def read_idx_images(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        b = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", b[:16])
    if magic != 2051:
        sys.exit("%s: not an IDX image file" % path)
    return np.frombuffer(b, dtype=np.uint8, offset=16).reshape(n, rows * cols).astype(np.float32)


def is_plain_build(bench):
    """False for sanitizer or Debug builds (their timings mean nothing)."""
    cache = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(bench))),
                         "CMakeCache.txt")
    try:
        with open(cache) as f:
            text = f.read()
    except OSError:
        return True
    if re.search(r"^QUARRY_(ASAN|UBSAN|TSAN):BOOL=ON$", text, re.M):
        return False
    return not re.search(r"^CMAKE_BUILD_TYPE:STRING=Debug$", text, re.M)


def find_bench(explicit):
    if explicit:
        return explicit
    cands = [p for p in glob.glob(os.path.join(REPO, "build*", "bench", "flat", "bench_flat"))
             if os.access(p, os.X_OK) and is_plain_build(p)]
    if not cands:
        sys.exit("no optimised bench_flat under %s/build*/; build one or pass --bench" % REPO)
    return max(cands, key=os.path.getmtime)


def run_quarry(bench, base, queries, gt, k, nq, extra):
    cmd = [bench, "--base", base, "--queries", queries, "--k", str(k), "--repeat", "1",
           "--nq", str(nq)] + extra
    if gt:
        cmd += ["--gt", gt]
    out = subprocess.run(cmd, check=False, capture_output=True, text=True)
    m = re.search(r"^RESULT (.*)$", out.stdout, re.M)
    if out.returncode != 0 or not m:
        sys.exit("bench_flat failed (%d):\n%s%s" % (out.returncode, out.stdout, out.stderr))
    return dict(kv.split("=", 1) for kv in m.group(1).split())


def faiss_pass(index, xq, k):
    t0 = time.perf_counter()
    for i in range(len(xq)):
        index.search(xq[i:i + 1], k)
    return (time.perf_counter() - t0) / len(xq) * 1e6


def recall_at_k(index, xq, gt, k):
    _, ids = index.search(xq, k)
    hits = sum(len(set(ids[i]) & set(gt[i, :k])) for i in range(len(xq)))
    return hits / (len(xq) * k)


def faiss_call_overhead(d, k):
    ix = faiss.IndexFlatL2(d)
    ix.add(np.zeros((k, d), dtype=np.float32))
    q = np.zeros((1, d), dtype=np.float32)
    for _ in range(100):
        ix.search(q, k)
    t0 = time.perf_counter()
    for _ in range(2000):
        ix.search(q, k)
    return (time.perf_counter() - t0) / 2000 * 1e6


def bench_one(name, base_path, query_path, gt_path, args, bench):
    xb = read_fvecs(base_path)
    xq = read_fvecs(query_path)[:args.max_queries]
    gt = read_ivecs(gt_path)[:len(xq)] if gt_path else None
    nq = len(xq)

    index = faiss.IndexFlatL2(xb.shape[1])
    index.add(xb)
    faiss_pass(index, xq, args.k)  # warm-up
    extra = ["--hugepages"] if args.hugepages else []
    if args.isa:
        extra += ["--isa", args.isa]

    q_us, f_us, isa = [], [], "?"
    q_recall = None
    for r in range(args.repeat):
        res = run_quarry(bench, base_path, query_path, gt_path, args.k, nq, extra)
        q_us.append(float(res["median_us"]))
        isa = res["isa"]
        q_recall = float(res["recall"]) if gt_path else None
        f_us.append(faiss_pass(index, xq, args.k))
        print("  %-14s round %d: quarry %9.1f us/query   faiss %9.1f us/query"
              % (name, r + 1, q_us[-1], f_us[-1]), flush=True)
    f_recall = recall_at_k(index, xq, gt, args.k) if gt is not None else None
    return {
        "name": name, "n": xb.shape[0], "dim": xb.shape[1], "nq": nq,
        "quarry": statistics.median(q_us), "faiss": statistics.median(f_us),
        "isa": isa, "q_recall": q_recall, "f_recall": f_recall,
        "overhead": faiss_call_overhead(xb.shape[1], args.k),
    }


def default_dir(name):
    p = os.path.normpath(os.path.join(REPO, "..", "shared", "data", name))
    return p if os.path.isdir(p) else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--siftsmall", default=default_dir("siftsmall"), help="siftsmall folder")
    ap.add_argument("--fashion-mnist", default=default_dir("fashion-mnist"),
                    help="fashion-mnist folder")
    ap.add_argument("--bench", help="path of bench_flat (default: the newest "
                    "non-sanitizer, non-Debug build*/ under the repo)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds per data set (median taken)")
    ap.add_argument("--max-queries", type=int, default=200, help="queries per round")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--hugepages", action="store_true",
                    help="let bench_flat madvise its base array for huge pages")
    ap.add_argument("--isa", choices=("scalar", "avx2", "avx512"),
                    help="force Quarry's kernel table (default: the best this CPU runs)")
    args = ap.parse_args()

    faiss.omp_set_num_threads(1)
    bench = find_bench(args.bench)
    opts = faiss.get_compile_options() if hasattr(faiss, "get_compile_options") else "?"
    print("bench_flat: %s\nfaiss %s (compile options: %s), 1 thread; %d rounds; k=%d; "
          "up to %d queries per round"
          % (os.path.relpath(bench), faiss.__version__, opts.strip(), args.repeat, args.k,
             args.max_queries))

    rows = []
    with tempfile.TemporaryDirectory(prefix="quarry-bench-") as tmp:
        if args.siftsmall:
            d = args.siftsmall
            rows.append(bench_one("siftsmall", os.path.join(d, "siftsmall_base.fvecs"),
                                  os.path.join(d, "siftsmall_query.fvecs"),
                                  os.path.join(d, "siftsmall_groundtruth.ivecs"), args, bench))
        if args.fashion_mnist:
            d = args.fashion_mnist
            base = os.path.join(tmp, "fmnist_base.fvecs")
            query = os.path.join(tmp, "fmnist_query.fvecs")
            write_fvecs(base, read_idx_images(os.path.join(d, "train-images-idx3-ubyte.gz")))
            write_fvecs(query, read_idx_images(os.path.join(d, "t10k-images-idx3-ubyte.gz")))
            gt = os.path.join(d, "fashion-mnist_groundtruth_l2_top100.ivecs")
            rows.append(bench_one("fashion-mnist", base, query, gt if os.path.exists(gt) else None,
                                  args, bench))
    if not rows:
        sys.exit("no data set given or found (--siftsmall, --fashion-mnist)")

    print()
    hdr = ("data set", "n x dim", "queries", "quarry us/q", "faiss us/q", "quarry/faiss",
           "isa", "recall@%d q/f" % args.k, "faiss call ovh")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "|".join("---" for _ in hdr) + "|")
    for r in rows:
        rec = ("%.3f / %.3f" % (r["q_recall"], r["f_recall"])
               if r["q_recall"] is not None else "-")
        print("| %s | %d x %d | %d | %.1f | %.1f | %.3f | %s | %s | %.1f us |"
              % (r["name"], r["n"], r["dim"], r["nq"], r["quarry"], r["faiss"],
                 r["quarry"] / r["faiss"], r["isa"], rec, r["overhead"]))


if __name__ == "__main__":
    main()
