#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HNSW baselines for bench_ann: hnswlib and FAISS IndexHNSWFlat, one thread.

Builds one HNSW index with the given engine on a base .fvecs file and sweeps
ef over the queries, printing the same CSV as bench_ann:

  engine,dataset,index,param,value,recall,qps,build_s,peak_rss_mb,index_bytes

  hnswlib  hnswlib.Index(space, dim); init_index(max_elements=n, M=m,
           ef_construction=efc, random_seed=100); set_num_threads(1);
           add_items(base, ids 0..n-1, num_threads=1). Per ef: set_ef(ef),
           then knn_query(all queries, k, num_threads=1) in ONE call.
  faiss    IndexHNSWFlat(d, M) (inner-product metric for ip and cosine; for
           cosine base and queries are L2-normalised, the base before the build
           clock starts, the queries inside the timed section);
           hnsw.efConstruction = efc; omp_set_num_threads(1);
           add(base). Per ef: hnsw.efSearch = ef, then search(all queries, k)
           in ONE call.

All queries go to the library in one call so that the per-query cost is the
library's own loop (one thread, one query after the other), not Python's.
Each point is timed --repeat times after an untimed warm-up of the first ef;
one timing repeats the call until at least --min-time seconds have gone by,
and its rate is queries run / time; qps is the median rate (bench_ann does
the same).

build_s is the wall time of index construction and insertion. index_bytes is
the growth of the process's resident set (VmRSS in /proc/self/status) across
the build: the index's memory including its copy of the vectors. peak_rss_mb
is the peak resident set at the end (VmHWM: the whole process, interpreter,
libraries and the loaded data included). Run one engine per process so that one engine's peak
does not include the other's.

Recall@k uses bench_ann's rule: a returned id counts when it is among the k
ground-truth ids, or when its exact distance (float64) is within 1e-6 relative
of the k-th ground-truth row's (a tie broken the other way).

Example:
  python3 bench/ann/peers.py --engine hnswlib --base b.fvecs --queries q.fvecs \\
          --gt gt.ivecs --name siftsmall --metric l2

Needs numpy, hnswlib and faiss importable (Debian: python3-numpy,
python3-hnswlib, python3-faiss, with the system /usr/bin/python3).
"""
import argparse
import resource
import statistics
import sys
import time

import numpy as np

TIE_REL = 1e-6


def read_fvecs(path):
    a = np.fromfile(path, dtype=np.int32)
    if a.size == 0:
        sys.exit("%s: empty file" % path)
    d = int(a[0])
    return a.reshape(-1, d + 1)[:, 1:].view(np.float32).copy()


def read_ivecs(path):
    a = np.fromfile(path, dtype=np.int32)
    if a.size == 0:
        sys.exit("%s: empty file" % path)
    d = int(a[0])
    return a.reshape(-1, d + 1)[:, 1:].copy()


def proc_status_bytes(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss_bytes():
    return proc_status_bytes("VmRSS")


def peak_rss_mb():
    """Peak resident set (VmHWM); ru_maxrss would carry the parent's across exec."""
    hwm = proc_status_bytes("VmHWM")
    if hwm:
        return hwm / 1048576.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def exact_dist(metric, q, x):
    """Distances (float64, smaller is closer) of the rows of x to the query q."""
    q = q.astype(np.float64)
    x = x.astype(np.float64)
    if metric == "l2":
        return ((x - q) ** 2).sum(axis=1)
    dot = x @ q
    if metric == "ip":
        return -dot
    nx = np.sqrt((x * x).sum(axis=1))
    nq = np.sqrt((q * q).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where((nx > 0) & (nq > 0), dot / (nx * nq), 0.0)
    return 1.0 - cos


def recall_at_k(metric, xb, xq, gt, ids, k):
    found = 0
    for i in range(len(xq)):
        g = gt[i, :k]
        kth = exact_dist(metric, xq[i], xb[g[k - 1]:g[k - 1] + 1])[0]
        limit = kth + TIE_REL * abs(kth)
        row = ids[i, :k]
        row = row[row >= 0]
        hit = np.isin(row, g)
        if not hit.all():
            d = exact_dist(metric, xq[i], xb[row])
            hit |= d <= limit
        found += int(hit.sum())
    return found / (len(xq) * k)


class Hnswlib:
    name = "hnswlib"

    def __init__(self, metric, dim):
        import hnswlib
        self.index = hnswlib.Index(space=metric, dim=dim)

    def version(self):
        try:
            from importlib.metadata import version
            return "version=%s" % version("hnswlib")
        except Exception:  # no distribution metadata installed
            return "version=?"

    def prepare(self, xb):
        return xb

    def build(self, xb, m, efc):
        self.index.init_index(max_elements=len(xb), M=m, ef_construction=efc, random_seed=100)
        self.index.set_num_threads(1)
        self.index.add_items(xb, np.arange(len(xb)), num_threads=1)

    def search(self, xq, k, ef):
        self.index.set_ef(ef)
        labels, _ = self.index.knn_query(xq, k=k, num_threads=1)
        return labels


class Faiss:
    name = "faiss"

    def __init__(self, metric, dim):
        import faiss
        self.faiss = faiss
        faiss.omp_set_num_threads(1)
        self.cosine = metric == "cosine"
        mt = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.dim, self.mt = dim, mt
        self.index = None

    def version(self):
        opts = (self.faiss.get_compile_options().strip()
                if hasattr(self.faiss, "get_compile_options") else "?")
        return "version=%s compile_options=%s" % (self.faiss.__version__, opts.replace(" ", "+"))

    def prepare(self, xb):
        if self.cosine:
            xb = xb.copy()
            self.faiss.normalize_L2(xb)
        return xb

    def build(self, xb, m, efc):
        self.index = self.faiss.IndexHNSWFlat(self.dim, m, self.mt)
        self.index.hnsw.efConstruction = efc
        self.index.add(xb)

    def search(self, xq, k, ef):
        self.index.hnsw.efSearch = ef
        if self.cosine:
            xq = xq.copy()
            self.faiss.normalize_L2(xq)
        _, labels = self.index.search(xq, k)
        return labels


ENGINES = {"hnswlib": Hnswlib, "faiss": Faiss}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", required=True, choices=sorted(ENGINES))
    ap.add_argument("--base", required=True, help="base vectors, .fvecs")
    ap.add_argument("--queries", required=True, help="query vectors, .fvecs")
    ap.add_argument("--gt", required=True, help="ground truth ids, .ivecs")
    ap.add_argument("--name", default="data", help="data set name for the CSV")
    ap.add_argument("--metric", default="l2", choices=("l2", "ip", "cosine"))
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--nq", type=int, default=0, help="use the first N queries (0 = all)")
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef-list", default="10,16,24,32,48,64,96,128,192,256")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.2,
                    help="seconds each timing runs at least (whole passes)")
    ap.add_argument("--no-header", action="store_true")
    args = ap.parse_args()
    efs = [int(x) for x in args.ef_list.split(",") if x]
    if not efs or min(efs) <= 0 or args.k <= 0 or args.repeat <= 0:
        sys.exit("bad --ef-list, --k or --repeat")

    xb = read_fvecs(args.base)
    xq = read_fvecs(args.queries)
    if args.nq:
        xq = xq[:args.nq]
    xq = np.ascontiguousarray(xq)
    gt = read_ivecs(args.gt)[:len(xq)]
    if xq.shape[1] != xb.shape[1]:
        sys.exit("%s: dimension differs from the base" % args.queries)
    if len(gt) < len(xq) or gt.shape[1] < args.k:
        sys.exit("%s: fewer ground-truth rows or columns than needed" % args.gt)
    k = args.k

    eng = ENGINES[args.engine](args.metric, xb.shape[1])
    print("# peers: %s dataset=%s n=%d dim=%d nq=%d k=%d metric=%s m=%d ef_construction=%d "
          "repeat=%d min_time=%.2f threads=1 %s"
          % (eng.name, args.name, len(xb), xb.shape[1], len(xq), k, args.metric, args.m,
             args.ef_construction, args.repeat, args.min_time, eng.version()),
          flush=True)
    print("%s: %s: building (n=%d)" % (eng.name, args.name, len(xb)), file=sys.stderr,
          flush=True)
    xadd = eng.prepare(xb)  # FAISS cosine: a normalised copy, made before the clock
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    eng.build(xadd, args.m, args.ef_construction)
    build_s = time.perf_counter() - t0
    index_bytes = max(0, rss_bytes() - rss0)
    print("# build: wall_s=%.3f rss_delta_mb=%.1f" % (build_s, index_bytes / 1048576.0),
          flush=True)

    del xadd
    eng.search(xq[:100], k, efs[0])  # warm-up, untimed
    if not args.no_header:
        print("engine,dataset,index,param,value,recall,qps,build_s,peak_rss_mb,index_bytes")
    for ef in efs:
        rates = []
        for _ in range(args.repeat):
            done = 0
            t = time.perf_counter()
            while True:
                ids = eng.search(xq, k, ef)
                done += len(xq)
                dt = time.perf_counter() - t
                if dt >= args.min_time:
                    break
            rates.append(done / dt)
        qps = statistics.median(rates)
        rec = recall_at_k(args.metric, xb, xq, gt, np.asarray(ids), k)
        print("%s,%s,hnsw,ef,%d,%.4f,%.1f,%.3f,%.1f,%d" % (eng.name, args.name, ef, rec, qps,
                                                         build_s, peak_rss_mb(), index_bytes),
              flush=True)
        print("%s: %s ef=%d recall=%.4f qps=%.0f" % (eng.name, args.name, ef, rec, qps),
              file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
