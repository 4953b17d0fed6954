#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ANN baselines for bench_ann: hnswlib, FAISS IndexHNSWFlat and IndexIVFPQ.

Builds one index with the given engine on a base .fvecs file and sweeps ef
(HNSW) or nprobe (IVF-PQ) over the queries, printing the same CSV as
bench_ann:

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
  faiss --index ivfpq
           IndexIVFPQ(IndexFlatL2(d), d, nlist, m, 8) (IndexFlatIP and the
           inner-product metric for ip and cosine): residual encoding and
           FAISS's precomputed L2 tables (both its defaults); k-means as FAISS
           sets it up (coarse quantiser: cp.niter 10 on at most 256*nlist
           sampled points, --coarse-niter overrides it; codebooks: pq.cp.niter
           25 on at most 65536 points). train(base) and add(base) are timed
           apart on --train-threads OpenMP threads (default 2, the number of
           threads Quarry trains and encodes with), then omp_set_num_threads(1)
           for every search. OMP_WAIT_POLICY defaults to PASSIVE: with the
           default (spinning) policy, 2 OpenMP threads on a busy 2-core machine
           trained several times slower than 1. Per nprobe: ivf.nprobe = p,
           then search(all queries, k) in ONE call.
           --refine R1,R2,... sweeps re-ranking factors on the same trained
           index: R <= 1 searches the IndexIVFPQ itself (index column
           "ivfpq-nl<L>-m<M>"); R > 1 searches IndexRefineFlat(ivfpq, base)
           with k_factor = R, which re-ranks the best R*k PQ candidates with
           exact distances from its flat copy of the base ("...+refine<R>").
           That copy is made after the build clock stops (its time and size,
           n * d * 4 bytes, are on the "# refine:" line); the refine rows'
           index_bytes add that size. Comment lines:
             # train_s=T add_s=A ...
             # ivf: nlist=L m=M rows=N code_bytes=B bytes_per_vector=B/N
           B = sum over the inverted lists of list_size * (code_size + 8): the
           codes and the 64-bit ids as stored. The lists are std::vectors
           that FAISS appends to one entry at a time, so they allocate more;
           alloc_model_bytes_per_vector models that (each list's capacity as
           the power of two >= its size, as libstdc++ grows it).
           build_s = train_s + add_s.
           --seed S / --seeds S1,S2,... (ivfpq): k-means seeds. For each seed in
           turn a new IndexIVFPQ is trained with cp.seed = pq.cp.seed = S (the
           coarse quantiser's and the codebooks' FAISS ClusteringParameters),
           filled and swept, and the previous one is freed first; its rows
           carry the seed at the end of the index column
           ("ivfpq-nl<L>-m<M>[+refine<R>]@s<S>", the CSV columns stay the
           same), and its comment lines follow "# seed: S". Without the option
           FAISS's default seed (1234) is used and the index column has no
           suffix. For the seeds after the first, index_bytes (RSS growth) can
           read low, as the freed index's memory is reused.

All queries go to the library in one call so that the per-query cost is the
library's own loop (one thread, one query after the other), not Python's.
Each point is timed --repeat times after an untimed warm-up of the first
point; one timing repeats the call until at least --min-time seconds have
gone by, and its rate is queries run / time; qps is the median rate
(bench_ann does the same). "# cpu_qps: index=I <param>=V qps_cpu=Q" after
each row is the same median over the process's CPU time (steadier on a shared
machine). "# search: wall_s=W cpu_s=C" after the sweep checks that the search
ran on one thread (C/W <= 1).

build_s is the wall time of index construction and insertion. index_bytes is
the growth of the process's resident set (VmRSS in /proc/self/status) across
the build: the index's memory including its copy of the vectors. peak_rss_mb
is the peak resident set at the end (VmHWM: the whole process, interpreter,
libraries and the loaded data included). Run one engine per process so that
one engine's peak does not include the other's. The "# peers:" line names the
BLAS library FAISS loaded (Debian's default libblas3 is the unoptimised
reference BLAS, which FAISS's k-means and batched coarse search call).

Recall@k uses bench_ann's rule: a returned id counts when it is among the k
ground-truth ids, or when its exact distance (float64) is within 1e-6 relative
of the k-th ground-truth row's (a tie broken the other way).

Examples:
  python3 bench/ann/peers.py --engine hnswlib --base b.fvecs --queries q.fvecs \\
          --gt gt.ivecs --name siftsmall --metric l2
  python3 bench/ann/peers.py --engine faiss --index ivfpq --nlist 100 --pq-m 16 \\
          --refine 1,10 --base b.fvecs --queries q.fvecs --gt gt.ivecs --name siftsmall

Needs numpy, hnswlib and faiss importable (Debian: python3-numpy,
python3-hnswlib, python3-faiss, with the system /usr/bin/python3).
"""
import argparse
import os
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


class FaissIVFPQ(Faiss):
    """FAISS IndexIVFPQ (8-bit codes); IndexRefineFlat around it for re-ranking."""

    def __init__(self, metric, dim, nlist, m, train_threads, coarse_niter, seed=None):
        import faiss
        self.faiss = faiss
        if dim % m:
            sys.exit("faiss IndexIVFPQ needs m to divide the dimension (%d %% %d != 0)"
                     % (dim, m))
        self.cosine = metric == "cosine"
        self.mt = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.dim, self.nlist, self.m = dim, nlist, m
        self.train_threads, self.coarse_niter = train_threads, coarse_niter
        self.seed = seed
        self.ivf = self.refined = None
        self.times = {}

    def build(self, xb, m, efc):
        faiss = self.faiss
        if self.mt == faiss.METRIC_L2:
            self.quantizer = faiss.IndexFlatL2(self.dim)
        else:
            self.quantizer = faiss.IndexFlatIP(self.dim)
        self.ivf = faiss.IndexIVFPQ(self.quantizer, self.dim, self.nlist, self.m, 8, self.mt)
        if self.coarse_niter:
            self.ivf.cp.niter = self.coarse_niter
        if self.seed is not None:
            self.ivf.cp.seed = self.seed      # coarse quantiser k-means
            self.ivf.pq.cp.seed = self.seed   # codebook k-means
        faiss.omp_set_num_threads(self.train_threads)
        t0 = time.perf_counter()
        self.ivf.train(xb)
        t1 = time.perf_counter()
        self.ivf.add(xb)
        t2 = time.perf_counter()
        faiss.omp_set_num_threads(1)
        self.times = {"train_s": t1 - t0, "add_s": t2 - t1}

    def add_refine(self, xb):
        """IndexRefineFlat over the trained index, its flat copy filled from xb."""
        self.xref = np.ascontiguousarray(xb)
        self.refined = self.faiss.IndexRefineFlat(self.ivf, self.faiss.swig_ptr(self.xref))

    def comments(self):
        il = self.ivf.invlists
        rows = sum(il.list_size(i) for i in range(self.ivf.nlist))
        code_bytes = rows * (il.code_size + 8)
        # what the lists allocate if they grow like libstdc++'s std::vector
        # (entries appended one at a time: capacity doubles, 1, 2, 4, ...)
        alloc = sum((1 << (il.list_size(i) - 1).bit_length()) * (il.code_size + 8)
                    for i in range(self.ivf.nlist) if il.list_size(i))
        return ["# train_s=%.3f add_s=%.3f train_threads=%d coarse_niter=%d pq_niter=%d "
                "precomputed_table=%d OMP_WAIT_POLICY=%s seed=%d"
                % (self.times["train_s"], self.times["add_s"], self.train_threads,
                   self.ivf.cp.niter, self.ivf.pq.cp.niter, self.ivf.use_precomputed_table,
                   os.environ.get("OMP_WAIT_POLICY", ""), self.ivf.cp.seed),
                "# ivf: nlist=%d m=%d rows=%d code_bytes=%d bytes_per_vector=%.2f "
                "alloc_model_bytes_per_vector=%.2f"
                % (self.ivf.nlist, self.ivf.pq.M, rows, code_bytes, code_bytes / max(rows, 1),
                   alloc / max(rows, 1))]

    def search(self, xq, k, point):
        """point = (refine, nprobe)."""
        refine, nprobe = point
        self.ivf.nprobe = nprobe
        if self.cosine:
            xq = xq.copy()
            self.faiss.normalize_L2(xq)
        if refine > 1:
            self.refined.k_factor = float(refine)
            _, labels = self.refined.search(xq, k)
        else:
            _, labels = self.ivf.search(xq, k)
        return labels


ENGINES = {"hnswlib": Hnswlib, "faiss": Faiss}


def int_list(s, name, zero_ok=False):
    try:
        v = [int(x) for x in s.split(",") if x]
    except ValueError:
        v = []
    if not v or min(v) < (0 if zero_ok else 1):
        sys.exit("bad list for %s: %r" % (name, s))
    return v


def blas_library():
    """The BLAS shared object this process mapped (FAISS's k-means and batched search)."""
    try:
        with open("/proc/self/maps") as f:
            libs = {ln.split()[-1] for ln in f if "blas" in ln.rsplit("/", 1)[-1]}
    except OSError:
        return "?"
    return ",".join(sorted(libs)) or "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", required=True, choices=sorted(ENGINES))
    ap.add_argument("--index", default="hnsw", choices=("hnsw", "ivfpq"),
                    help="ivfpq: FAISS IndexIVFPQ (--engine faiss only)")
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
    ap.add_argument("--nlist", type=int, default=0,
                    help="IVF lists (0 = Quarry's default: 4*sqrt(n), at most n/39, >= 16)")
    ap.add_argument("--pq-m", type=int, default=0,
                    help="PQ sub-quantisers = code bytes (0 = Quarry's default: dim/4, <= 64)")
    ap.add_argument("--nprobe-list", default="1,2,4,8,16,32,64,128")
    ap.add_argument("--refine", default="0",
                    help="re-ranking factors to sweep, comma-separated (0 or 1 = off)")
    ap.add_argument("--train-threads", type=int, default=2,
                    help="OpenMP threads for IVF-PQ train and add (search uses 1)")
    ap.add_argument("--coarse-niter", type=int, default=0,
                    help="k-means iterations of the coarse quantiser (0 = FAISS's default)")
    ap.add_argument("--seed", type=int, help="k-means seed for IVF-PQ (= --seeds S)")
    ap.add_argument("--seeds", help="k-means seeds for IVF-PQ, comma-separated: one index "
                    "per seed, rows suffixed @s<S> (default: FAISS's seed, no suffix)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=0.2,
                    help="seconds each timing runs at least (whole passes)")
    ap.add_argument("--no-header", action="store_true")
    args = ap.parse_args()
    ivf = args.index == "ivfpq"
    if ivf and args.engine != "faiss":
        sys.exit("--index ivfpq needs --engine faiss")
    if args.k <= 0 or args.repeat <= 0:
        sys.exit("bad --k or --repeat")
    if args.train_threads <= 0 or args.nlist < 0 or args.pq_m < 0 or args.coarse_niter < 0:
        sys.exit("bad --train-threads, --nlist, --pq-m or --coarse-niter")
    if args.seed is not None and args.seeds:
        sys.exit("give --seed or --seeds, not both")
    seeds = ([args.seed] if args.seed is not None else
             int_list(args.seeds, "--seeds", zero_ok=True) if args.seeds else [None])
    if seeds != [None] and not ivf:
        sys.exit("--seed/--seeds apply to --index ivfpq")
    if ivf:
        # before libgomp starts (faiss is imported below)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
    n, dim = xb.shape

    if ivf:
        nlist = args.nlist or max(16, min(int(4 * n ** 0.5), n // 39))
        pq_m = args.pq_m or max(1, min(dim // 4, 64))

        def make_engine(seed):
            return FaissIVFPQ(args.metric, dim, nlist, pq_m, args.train_threads,
                              args.coarse_niter, seed)
        refines = int_list(args.refine, "--refine", zero_ok=True)
        nprobes = int_list(args.nprobe_list, "--nprobe-list")
        base_name = "ivfpq-nl%d-m%d" % (nlist, pq_m)
        # (index column, param value, search point) for every sweep point
        points = [(base_name + ("+refine%d" % r if r > 1 else ""), p, (r, p))
                  for r in refines for p in nprobes]
        param = "nprobe"
        extra = " index=ivfpq nlist=%d pq_m=%d refine=%s train_threads=%d blas=%s" % (
            nlist, pq_m, ",".join(str(max(r, 1)) for r in refines), args.train_threads,
            blas_library())
        if seeds != [None]:
            extra += " seeds=%s" % ",".join(map(str, seeds))
    else:
        def make_engine(seed):
            return ENGINES[args.engine](args.metric, dim)
        points = [("hnsw", ef, ef) for ef in int_list(args.ef_list, "--ef-list")]
        param, extra = "ef", ""
    eng = make_engine(seeds[0])
    print("# peers: %s dataset=%s n=%d dim=%d nq=%d k=%d metric=%s m=%d ef_construction=%d "
          "repeat=%d min_time=%.2f threads=1%s %s"
          % (eng.name, args.name, n, dim, len(xq), k, args.metric, args.m,
             args.ef_construction, args.repeat, args.min_time, extra, eng.version()),
          flush=True)
    header = not args.no_header
    for si, seed in enumerate(seeds):
        if si:
            del eng  # free the previous seed's index before the next build
            eng = make_engine(seed)
        suffix = "" if seed is None else "@s%d" % seed
        if seed is not None:
            print("# seed: %d" % seed, flush=True)
            print("%s: %s: seed %d (%d of %d)" % (eng.name, args.name, seed, si + 1, len(seeds)),
                  file=sys.stderr, flush=True)
        run_one(args, eng, xb, xq, gt, points, param, suffix, header)
        header = False


def run_one(args, eng, xb, xq, gt, points, param, suffix, header):
    """Build eng's index on xb and sweep the points over xq (one seed)."""
    ivf = args.index == "ivfpq"
    k = args.k
    n, dim = xb.shape
    print("%s: %s: building (n=%d)" % (eng.name, args.name, n), file=sys.stderr, flush=True)
    xadd = eng.prepare(xb)  # FAISS cosine: a normalised copy, made before the clock
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    eng.build(xadd, args.m, args.ef_construction)
    build_s = time.perf_counter() - t0
    index_bytes = max(0, rss_bytes() - rss0)
    print("# build: wall_s=%.3f rss_delta_mb=%.1f" % (build_s, index_bytes / 1048576.0),
          flush=True)
    refine_bytes = 0
    if ivf:
        print("\n".join(eng.comments()), flush=True)
        if max(p[2][0] for p in points) > 1:
            t1 = time.perf_counter()
            eng.add_refine(xadd)
            refine_bytes = eng.refined.refine_index.ntotal * dim * 4
            print("# refine: IndexRefineFlat copy wall_s=%.3f bytes=%d"
                  % (time.perf_counter() - t1, refine_bytes), flush=True)

    del xadd
    eng.search(xq[:100], k, points[0][2])  # warm-up, untimed
    if header:
        print("engine,dataset,index,param,value,recall,qps,build_s,peak_rss_mb,index_bytes")
    sweep_wall = sweep_cpu = 0.0
    for name, value, point in points:
        name += suffix
        rates, rates_cpu = [], []
        c0 = time.process_time()
        w0 = time.perf_counter()
        for _ in range(args.repeat):
            done = 0
            t = time.perf_counter()
            tc = time.process_time()
            while True:
                ids = eng.search(xq, k, point)
                done += len(xq)
                dt = time.perf_counter() - t
                if dt >= args.min_time:
                    break
            dc = time.process_time() - tc
            rates.append(done / dt)
            rates_cpu.append(done / dc if dc > 0 else 0.0)
        sweep_wall += time.perf_counter() - w0
        sweep_cpu += time.process_time() - c0
        qps = statistics.median(rates)
        rec = recall_at_k(args.metric, xb, xq, gt, np.asarray(ids), k)
        mem = index_bytes + (refine_bytes if "+refine" in name else 0)
        print("%s,%s,%s,%s,%d,%.4f,%.1f,%.3f,%.1f,%d"
              % (eng.name, args.name, name, param, value, rec, qps, build_s, peak_rss_mb(), mem),
              flush=True)
        print("# cpu_qps: index=%s %s=%d qps_cpu=%.1f"
              % (name, param, value, statistics.median(rates_cpu)), flush=True)
        print("%s: %s %s %s=%d recall=%.4f qps=%.0f" % (eng.name, args.name, name, param, value,
                                                        rec, qps), file=sys.stderr, flush=True)
    print("# search: wall_s=%.3f cpu_s=%.3f" % (sweep_wall, sweep_cpu), flush=True)

if __name__ == "__main__":
    main()
