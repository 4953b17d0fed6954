# SPDX-License-Identifier: MIT
"""The Python client against a real quarryd on a free loopback port.

Every RPC round-trips through quarry.Client (numpy arrays in, dataclasses out),
partial updates (vectors attached to stored chunks) included;
an IVF-PQ collection is created with its parameters, trained (waiting and not),
shows its index in the stats and answers queries with nprobe/refine; bad
requests raise the documented QuarryError subclass with the right status code
and change nothing; an API key server refuses missing/wrong keys; the RAG
example and the remote CLI (IVF-PQ commands included) run against the server.

Run by ctest with Debian's /usr/bin/python3 and
PYTHONPATH=clients/python:<build>/python; QUARRYD (and QUARRY_CLI) name the
binaries under test.
"""
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import ctypes

import grpc

import quarry
from quarry import (AlreadyExists, Client, DeadlineExceeded, InvalidArgument, NotFound,
                    QuarryError, ResourceExhausted, TrainResult, Unauthenticated, Unimplemented,
                    hash_embed)

try:
    import numpy as np
except ImportError:  # numpy is optional for the client
    np = None

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
QUARRYD = os.environ.get("QUARRYD")
QUARRY_CLI = os.environ.get("QUARRY_CLI")


def _die_with_parent():
    """Child side: SIGKILL when the test process dies, so no server outlives it."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Server:
    """A quarryd child process listening on 127.0.0.1:<free port>."""

    def __init__(self, data, *args, api_key=None):
        self.data = data
        self.portfile = data + ".port"
        self.log = open(data + ".log", "ab")
        env = dict(os.environ)
        env.pop("QUARRY_API_KEY", None)
        if api_key:
            env["QUARRY_API_KEY"] = api_key
        self.proc = subprocess.Popen(
            [QUARRYD, "--data", data, "--listen", "127.0.0.1:0", "--port-file", self.portfile,
             *args], stdout=subprocess.DEVNULL, stderr=self.log, env=env,
            preexec_fn=_die_with_parent)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("quarryd exited with %d" % self.proc.returncode)
            try:
                with open(self.portfile) as f:
                    self.port = int(f.read())
                    break
            except (OSError, ValueError):
                time.sleep(0.01)
        else:
            raise RuntimeError("quarryd did not start")
        self.addr = "127.0.0.1:%d" % self.port

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        rc = self.proc.wait(60)
        self.log.close()
        return rc


def setUpModule():
    global TMP, SRV, KEYSRV
    if not QUARRYD:
        raise unittest.SkipTest("QUARRYD is not set")
    TMP = tempfile.mkdtemp(prefix="quarry-pytest-")
    SRV = Server(os.path.join(TMP, "db"), "--max-message-bytes", "1048576",
                 "--max-batch-rows", "5000")
    KEYSRV = Server(os.path.join(TMP, "keydb"), api_key="py-secret")


def tearDownModule():
    rcs = [SRV.stop(), KEYSRV.stop()]
    shutil.rmtree(TMP, ignore_errors=True)
    assert rcs == [0, 0], "quarryd exit statuses %r" % rcs


def vec(i, dim=8):
    return [math.sin(i * 0.7 + j) for j in range(dim)]


class RoundTrip(unittest.TestCase):
    def setUp(self):
        self.db = Client(SRV.addr)

    def tearDown(self):
        self.db.close()

    def test_health(self):
        self.assertEqual(self.db.health(), "SERVING")
        self.assertEqual(self.db.health("quarry.v1.Quarry"), "SERVING")
        with self.assertRaises(NotFound):
            self.db.health("nope")

    def test_collections(self):
        info = self.db.create_collection("py_c", dim=16, metric="cosine", index="hnsw",
                                         hnsw_m=8)
        self.assertEqual(info.name, "py_c")
        self.assertEqual(info.config["dim"], 16)
        self.assertEqual(info.config["metric"], "cosine")
        self.assertEqual(info.config["index"], "hnsw")
        self.assertEqual(info.config["hnsw_m"], 8)
        with self.assertRaises(AlreadyExists) as cm:
            self.db.create_collection("py_c", dim=16)
        self.assertEqual(cm.exception.code, grpc.StatusCode.ALREADY_EXISTS)
        self.db.create_collection("py_c", dim=16, if_not_exists=True)
        names = [c.name for c in self.db.list_collections()]
        self.assertIn("py_c", names)
        self.assertEqual(names, sorted(names))
        self.assertEqual(self.db.describe_collection("py_c").stats["rows"], 0)
        self.assertTrue(self.db.drop_collection("py_c"))
        self.assertFalse(self.db.drop_collection("py_c", if_exists=True))
        with self.assertRaises(NotFound):
            self.db.describe_collection("py_c")
        with self.assertRaises(ValueError):
            self.db.create_collection("x", metric="manhattan")

    def test_upsert_get_query_delete(self):
        self.db.create_collection("py_rows", dim=8, index="hnsw")
        n = 300
        vectors = [vec(i) for i in range(n)]
        if np is not None:
            vectors = np.array(vectors, dtype=np.float32)
        ids = ["p%d" % i for i in range(n)]
        meta = [{"parity": "even" if i % 2 == 0 else "odd", "i": i} for i in range(n)]
        texts = ["text of row %d" % i for i in range(n)]
        self.assertEqual(self.db.upsert("py_rows", ids, vectors, texts, meta), n)

        rows = self.db.get("py_rows", ["p5", "missing", "p6"])
        self.assertEqual(set(rows), {"p5", "p6"})
        self.assertEqual(rows["p5"].text, "text of row 5")
        self.assertEqual(rows["p5"].metadata, {"parity": "odd", "i": 5})
        for a, b in zip(rows["p5"].vector, vec(5)):
            self.assertAlmostEqual(a, b, places=6)
        only = self.db.get("py_rows", ["p5"], fields=["metadata"])["p5"]
        self.assertIsNone(only.vector)
        self.assertIsNone(only.text)

        q = np.array(vec(77), dtype=np.float32) if np is not None else vec(77)
        hits = self.db.query("py_rows", vector=q, k=5, explain=True)
        self.assertEqual(hits[0].id, "p77")
        self.assertAlmostEqual(hits[0].distance, 0.0, places=5)
        self.assertEqual(hits[0].explain["vector"][0], 1)
        self.assertEqual(hits[0].text, "text of row 77")
        self.assertEqual([h.id for h in self.db.query("py_rows", vector=q, k=2, offset=1)],
                         [h.id for h in hits[1:3]])
        even = self.db.query("py_rows", vector=q, k=10, filter={"parity": "even"})
        self.assertEqual(len(even), 10)
        self.assertTrue(all(h.metadata["parity"] == "even" for h in even))
        withvec = self.db.query("py_rows", vector=q, k=1, fields=["vector"])
        self.assertEqual(len(withvec[0].vector), 8)
        self.assertIsNone(withvec[0].text)

        self.assertEqual(self.db.delete("py_rows", ["p77", "p78", "none"]), 2)
        self.assertNotIn("p77", [h.id for h in self.db.query("py_rows", vector=q, k=5)])
        self.assertEqual(self.db.describe_collection("py_rows").stats["rows"], n - 2)

    def test_chunk(self):
        text = ("# Título\nPrimera frase. Segunda frase.\r\n\r\n## 中文\n日本語のテキストです。"
                "二つ目！\n\n## Emoji 👍🏽\nword " + "x" * 50 + " end 👨‍👩‍👧.\n")
        data = text.encode("utf-8")
        for strategy in ("sentence", "fixed_chars", "fixed_words", "recursive", "markdown"):
            chunks = self.db.chunk(text, strategy=strategy, max=12, overlap=0)
            self.assertTrue(chunks, strategy)
            for c in chunks:
                # byte offsets into the UTF-8 text, never inside a code point
                self.assertEqual(data[c.start:c.end].decode("utf-8"), c.text)
        md = self.db.chunk(text, strategy="markdown", max=1000)
        self.assertEqual([c.headings for c in md],
                         [["Título"], ["Título", "中文"], ["Título", "Emoji 👍🏽"]])
        self.assertEqual(self.db.chunk("", strategy="recursive"), [])
        default = self.db.chunk("One. Two. Three.")
        self.assertEqual(len(default), 1)
        with self.assertRaises(InvalidArgument):
            self.db.chunk("a b", max=3, overlap=3)

    def test_upsert_document(self):
        self.db.create_collection("py_docs", dim=64, metric="cosine")
        text = ("Quarry keeps byte offsets for every chunk. Citations point at the exact text. "
                "Hybrid search fuses vectors and keywords. Chunks are rows too.")
        chunks = self.db.chunk(text, max=8)
        vectors = [hash_embed(c.text) for c in chunks]
        stored = self.db.upsert_document("py_docs", "d1", text, metadata={"lang": "en"},
                                         max=8, vectors=vectors)
        self.assertEqual([(c.start, c.end) for c in stored], [(c.start, c.end) for c in chunks])
        rows = self.db.get("py_docs", ["d1#%d" % i for i in range(len(stored))])
        for i, c in enumerate(stored):
            r = rows["d1#%d" % i]
            self.assertEqual(r.metadata["_parent"], "d1")
            self.assertEqual(r.metadata["_chunk"], i)
            self.assertEqual(r.metadata["lang"], "en")
            self.assertEqual(text.encode()[r.metadata["_start"]:r.metadata["_end"]].decode(),
                             r.text)
        hits = self.db.query("py_docs", vector=hash_embed("citations exact text"), k=1,
                             filter={"_parent": "d1"})
        self.assertIn("Citations", hits[0].text)
        try:
            th = self.db.query("py_docs", text="citations", k=1)
            self.assertIn("Citations", th[0].text)  # once BM25 is there
        except Unimplemented as e:
            self.assertEqual(e.code, grpc.StatusCode.UNIMPLEMENTED)
        # a shorter version replaces the chunks
        self.db.upsert_document("py_docs", "d1", "Only one sentence now.")
        self.assertEqual(set(self.db.get("py_docs", ["d1#0", "d1#1", "d1#2"])), {"d1#0"})
        with self.assertRaises(InvalidArgument):
            self.db.upsert_document("py_docs", "d2", text, metadata={"_chunk": 1})
        with self.assertRaises(InvalidArgument):
            self.db.upsert_document("py_docs", "d2", text, max=8, vectors=vectors[:1])

    def test_partial_update(self):
        self.db.create_collection("py_upd", dim=64, metric="cosine", index="hnsw")
        text = ("Sourdough needs a lively starter. Keep the dough warm while it rises. "
                "Bake it hot and let it cool before slicing.")
        # chunks stored without vectors, vectors attached later
        stored = self.db.upsert_document("py_upd", "bread", text, metadata={"lang": "en"},
                                         max=8)
        ids = ["bread#%d" % i for i in range(len(stored))]
        self.assertGreater(len(ids), 1)
        before = self.db.get("py_upd", ids)
        self.assertTrue(all(r.vector is None for r in before.values()))
        self.assertEqual(self.db.describe_collection("py_upd").stats["rows_with_vector"], 0)
        vectors = [hash_embed(c.text) for c in stored]
        if np is not None:
            vectors = np.array(vectors, dtype=np.float32)
        self.assertEqual(self.db.upsert("py_upd", ids, vectors=vectors,
                                        texts=["not sent"] * len(ids), update=["vector"]),
                         len(ids))
        after = self.db.get("py_upd", ids)
        for i, id_ in enumerate(ids):
            self.assertEqual(after[id_].text, before[id_].text)
            self.assertEqual(after[id_].metadata, before[id_].metadata)
            self.assertEqual(len(after[id_].vector), 64)
        stats = self.db.describe_collection("py_upd").stats
        self.assertEqual((stats["rows"], stats["rows_with_vector"]), (len(ids), len(ids)))
        hits = self.db.query("py_upd", vector=hash_embed(stored[1].text), k=1)
        self.assertEqual(hits[0].id, ids[1])
        self.assertEqual(hits[0].text, stored[1].text)
        self.assertEqual(text.encode()[hits[0].metadata["_start"]:hits[0].metadata["_end"]]
                         .decode(), stored[1].text)
        # metadata only (a single field name works too); then clear it
        meta = dict(after[ids[0]].metadata, checked=True)
        self.db.upsert("py_upd", [ids[0]], metadata=[meta], update="metadata")
        row = self.db.get("py_upd", [ids[0]])[ids[0]]
        self.assertEqual(row.metadata, meta)
        self.assertEqual(row.text, stored[0].text)
        self.assertIsNotNone(row.vector)
        self.assertEqual(self.db.query("py_upd", vector=hash_embed(stored[0].text), k=1,
                                       filter={"checked": True})[0].id, ids[0])
        self.db.upsert("py_upd", [ids[0]], update=["metadata", "text"])
        row = self.db.get("py_upd", [ids[0]])[ids[0]]
        self.assertIsNone(row.metadata)
        self.assertIsNone(row.text)
        self.assertIsNotNone(row.vector)
        # a missing id: NotFound naming it, nothing written
        s0 = self.db.describe_collection("py_upd").stats
        with self.assertRaises(NotFound) as cm:
            self.db.upsert("py_upd", [ids[1], "ghost"], texts=["x", "y"], update=["text"])
        self.assertIn("ghost", cm.exception.details)
        s1 = self.db.describe_collection("py_upd").stats
        self.assertEqual((s1["rows"], s1["last_lsn"], s1["batches"]),
                         (s0["rows"], s0["last_lsn"], s0["batches"]))
        self.assertEqual(self.db.get("py_upd", [ids[1]])[ids[1]].text, stored[1].text)
        with self.assertRaises(ValueError):
            self.db.upsert("py_upd", ids[:1], update=["colour"])
        with self.assertRaises(ValueError):
            self.db.upsert("py_upd", ids[:1], update=[])
        with self.assertRaises(InvalidArgument):
            self.db.upsert("py_upd", ids[:1], vectors=[[1.0, 2.0]], update=["vector"])

    def test_query_timeout(self):
        # a timeout that has already passed: DeadlineExceeded, and the client goes on
        # (tests/rpc/test_rpc_deadline.c covers the server abandoning a running search)
        self.db.create_collection("py_timeout", dim=4)
        self.db.upsert("py_timeout", ["a"], [[1, 0, 0, 0]])
        with self.assertRaises(DeadlineExceeded):
            self.db.query("py_timeout", vector=[1, 0, 0, 0], k=1, timeout=0)
        self.assertEqual([h.id for h in self.db.query("py_timeout", vector=[1, 0, 0, 0], k=1,
                                                       timeout=30)], ["a"])

    def test_stats(self):
        s = self.db.stats()
        self.assertGreater(s["server"]["calls"], 0)
        self.assertEqual(s["server"]["version"], quarry.__version__)
        self.assertIn(s["server"]["io_backend"], ("io_uring", "posix"))


class IvfPq(unittest.TestCase):
    """An IVF-PQ collection: parameters, Train (waiting and not), stats, probed queries,
    and the errors of each."""

    DIM, N = 16, 3000

    @classmethod
    def setUpClass(cls):
        cls.db = Client(SRV.addr)

    @classmethod
    def tearDownClass(cls):
        cls.db.close()

    def wait_trained(self, name):
        deadline = time.time() + 120
        while True:
            st = self.db.describe_collection(name).stats
            if st["ivf_nlist"] and not st["ivf_training"]:
                return st
            self.assertLess(time.time(), deadline, "no training ended within 120 s")
            time.sleep(0.02)

    def test_train_and_query(self):
        info = self.db.create_collection("py_ivf", dim=self.DIM, index="ivfpq", nlist=16,
                                         pq_m=8, nprobe=8, refine=3, train_rows=1000,
                                         durability="none")
        self.assertEqual(info.config["index"], "ivfpq")
        for key, want in (("ivf_nlist", 16), ("pq_m", 8), ("ivf_nprobe", 8),
                          ("ivf_refine", 3), ("ivf_train_rows", 1000)):
            self.assertEqual(info.config[key], want, key)
        for key in ("ivf_nlist", "pq_m", "ivf_rows", "ivf_code_bytes"):
            self.assertEqual(info.stats[key], 0, key)  # answering exactly until trained
        self.assertIs(info.stats["ivf_training"], False)
        with self.assertRaises(InvalidArgument) as cm:  # no vectors yet
            self.db.train("py_ivf")
        self.assertIn("needs at least", cm.exception.details)

        vectors = [vec(i, self.DIM) for i in range(self.N)]
        if np is not None:
            vectors = np.array(vectors, dtype=np.float32)
        ids = ["iv%d" % i for i in range(self.N)]
        self.assertEqual(self.db.upsert("py_ivf", ids, vectors), self.N)
        t = self.db.train("py_ivf")  # (or joins the automatic one: it saw all 3000 too)
        self.assertIsInstance(t, TrainResult)
        self.assertEqual((t.nlist, t.pq_m, t.rows, t.training), (16, 8, self.N, False))
        st = self.db.stats("py_ivf")["collections"]["py_ivf"].stats
        self.assertEqual((st["ivf_nlist"], st["pq_m"], st["ivf_rows"]), (16, 8, self.N))
        self.assertIs(st["ivf_training"], False)
        self.assertGreaterEqual(st["ivf_code_bytes"], self.N * 8)

        for i in range(0, self.N, 131):
            hits = self.db.query("py_ivf", vector=vectors[i], k=5, nprobe=16, refine=10)
            self.assertEqual(hits[0].id, "iv%d" % i)
            self.assertEqual(hits[0].distance, 0.0)  # re-ranked with the stored vector
        approx = self.db.query("py_ivf", vector=vectors[5], k=5, nprobe=1, refine=1)
        self.assertEqual(len(approx), 5)
        self.assertEqual([h.distance for h in approx], sorted(h.distance for h in approx))
        # hybrid: the IVF knobs ride on the vector clause of a fused query too
        try:
            fused = self.db.query("py_ivf", vector=vectors[9], text="anything", k=3,
                                  nprobe=16, refine=10)
            self.assertEqual(fused[0].id, "iv9")
        except Unimplemented:
            pass  # no BM25 index on a collection without text

        t = self.db.train("py_ivf", wait=False)
        self.assertEqual(t.nlist, 16)  # the index serving until the new one is swapped in
        st = self.wait_trained("py_ivf")
        self.assertEqual(st["ivf_rows"], self.N)

        # errors: the documented statuses, and nothing changes
        before = self.db.describe_collection("py_ivf").stats
        IA = grpc.StatusCode.INVALID_ARGUMENT
        with self.assertRaises(InvalidArgument) as cm:
            self.db.query("py_ivf", vector=vectors[0], k=5, refine=1001)
        self.assertEqual(cm.exception.code, IA)
        self.assertIn("refine", cm.exception.details)
        with self.assertRaises(InvalidArgument) as cm:
            self.db.query("py_ivf", vector=vectors[0], k=5, nprobe=65537)
        self.assertIn("nprobe", cm.exception.details)
        with self.assertRaises(NotFound):
            self.db.train("py_nope")
        after = self.db.describe_collection("py_ivf").stats
        for key in ("rows", "last_lsn", "ivf_nlist", "ivf_rows"):
            self.assertEqual(after[key], before[key], key)
        self.assertEqual(self.db.query("py_ivf", vector=vectors[1], k=1)[0].id, "iv1")

    def test_automatic_training(self):
        self.db.create_collection("py_ivf_auto", dim=8, index="ivfpq", nlist=16, pq_m=4,
                                  train_rows=500, durability="none")
        self.db.upsert("py_ivf_auto", ["a%d" % i for i in range(600)],
                       [vec(i) for i in range(600)])
        st = self.wait_trained("py_ivf_auto")
        self.assertEqual((st["ivf_nlist"], st["pq_m"], st["ivf_rows"]), (16, 4, 600))

    def test_errors(self):
        self.db.create_collection("py_ivf_flat", dim=4)
        self.db.upsert("py_ivf_flat", ["f%d" % i for i in range(300)],
                       [[i, 1, 2, 3] for i in range(300)])
        with self.assertRaises(Unimplemented) as cm:
            self.db.train("py_ivf_flat")
        self.assertEqual(cm.exception.code, grpc.StatusCode.UNIMPLEMENTED)
        self.assertIn("not ivfpq", cm.exception.details)
        with self.assertRaises(Unimplemented):
            self.db.train("py_ivf_flat", wait=False)
        # nprobe/refine on another index kind are accepted and ignored, like ef
        self.assertEqual(self.db.query("py_ivf_flat", vector=[7, 1, 2, 3], k=1, nprobe=4,
                                       refine=2)[0].id, "f7")
        with self.assertRaises(InvalidArgument) as cm:
            self.db.create_collection("py_ivf_bad", dim=4, index="ivfpq", pq_m=5)
        self.assertIn("pq_m", cm.exception.details)
        with self.assertRaises(InvalidArgument):
            self.db.create_collection("py_ivf_bad", dim=4, index="ivfpq", refine=1001)
        with self.assertRaises(InvalidArgument):
            self.db.create_collection("py_ivf_bad", dim=4, index="ivfpq", nlist=65537)
        with self.assertRaises(NotFound):
            self.db.describe_collection("py_ivf_bad")
        with self.assertRaises(TypeError):
            self.db.create_collection("py_ivf_bad", dim=4, index="ivfpq", nlist=8, ivf_nlist=8)
        self.assertEqual(self.db.health(), "SERVING")


class BadInput(unittest.TestCase):
    """Each bad request raises its documented error, changes nothing, and the server
    keeps serving."""

    @classmethod
    def setUpClass(cls):
        cls.db = Client(SRV.addr)
        cls.db.create_collection("py_bad", dim=4)
        cls.db.upsert("py_bad", ["a", "b"], [[1, 2, 3, 4], [4, 3, 2, 1]])

    @classmethod
    def tearDownClass(cls):
        cls.db.close()

    def assertUnchanged(self, before):
        after = self.db.describe_collection("py_bad").stats
        for key in ("rows", "last_lsn", "batches"):
            self.assertEqual(after[key], before[key], key)

    def check(self, exc, code, fn, *args, **kw):
        before = self.db.describe_collection("py_bad").stats
        with self.assertRaises(exc) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.code, code)
        self.assertTrue(cm.exception.details)
        self.assertUnchanged(before)
        return cm.exception

    def test_bad_rows(self):
        IA = grpc.StatusCode.INVALID_ARGUMENT
        e = self.check(InvalidArgument, IA, self.db.upsert, "py_bad", ["x"], [[1, 2, 3]])
        self.assertIn("dim", e.details)
        self.check(InvalidArgument, IA, self.db.upsert, "py_bad", ["x"],
                   [[1, float("nan"), 3, 4]])
        self.check(InvalidArgument, IA, self.db.upsert, "py_bad", [""], [[1, 2, 3, 4]])
        self.check(InvalidArgument, IA, self.db.upsert, "py_bad", ["i" * 257], [[1, 2, 3, 4]])
        self.check(InvalidArgument, IA, self.db.upsert, "py_bad", ["a\0b"], [[1, 2, 3, 4]])
        self.check(InvalidArgument, IA, self.db.upsert, "py_bad", ["x"], [[1, 2, 3, 4]],
                   metadata=[{"nested": {"no": 1}}])
        self.check(InvalidArgument, IA, self.db.upsert, "py_bad", ["ok", "bad"],
                   [[1, 2, 3, 4], [1, 2, 3]])
        self.check(NotFound, grpc.StatusCode.NOT_FOUND, self.db.upsert, "nope", ["x"],
                   [[1, 2, 3, 4]])

    def test_bad_queries(self):
        IA = grpc.StatusCode.INVALID_ARGUMENT
        self.check(InvalidArgument, IA, self.db.query, "py_bad", vector=[1, 2, 3, 4], k=0)
        self.check(InvalidArgument, IA, self.db.query, "py_bad", vector=[1, 2, 3], k=1)
        self.check(InvalidArgument, IA, self.db.query, "py_bad", vector=[1, 2, 3, 4], k=1,
                   filter="{not json")
        self.check(InvalidArgument, IA, self.db.query, "py_bad", k=1)
        self.check(NotFound, grpc.StatusCode.NOT_FOUND, self.db.query, "nope",
                   vector=[1, 2, 3, 4])

    def test_limits(self):
        RE = grpc.StatusCode.RESOURCE_EXHAUSTED
        ids = ["r%d" % i for i in range(5001)]
        e = self.check(ResourceExhausted, RE, self.db.upsert, "py_bad", ids,
                       [[1, 2, 3, 4]] * 5001)
        self.assertIn("max-batch-rows", e.details)
        big = "x" * (2 << 20)  # over the 1 MiB --max-message-bytes
        self.check(ResourceExhausted, RE, self.db.upsert, "py_bad", ["big"], [[1, 2, 3, 4]],
                   [big])

    def test_garbage_and_unknown_method(self):
        ch = grpc.insecure_channel(SRV.addr)
        try:
            before = self.db.describe_collection("py_bad").stats
            with self.assertRaises(grpc.RpcError) as cm:
                ch.unary_unary("/quarry.v1.Quarry/Upsert")(b"\xff\xff\xff\xff\x0f", timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            with self.assertRaises(grpc.RpcError) as cm:
                ch.unary_unary("/quarry.v1.Quarry/Nope")(b"", timeout=10)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
            self.assertUnchanged(before)
        finally:
            ch.close()
        self.assertEqual(len(self.db.query("py_bad", vector=[1, 2, 3, 4], k=2)), 2)


class Auth(unittest.TestCase):
    def test_api_key(self):
        with Client(KEYSRV.addr, api_key="py-secret") as good:
            good.create_collection("k", dim=2, if_not_exists=True)
            good.upsert("k", ["a"], [[1, 2]])
            before = good.describe_collection("k").stats
            for key in (None, "wrong", "py-secre", "py-secret2"):
                with Client(KEYSRV.addr, api_key=key) as bad:
                    self.assertEqual(bad.health(), "SERVING")  # health needs no key
                    with self.assertRaises(Unauthenticated) as cm:
                        bad.upsert("k", ["b"], [[1, 2]])
                    self.assertEqual(cm.exception.code, grpc.StatusCode.UNAUTHENTICATED)
                    with self.assertRaises(Unauthenticated):
                        bad.list_collections()
            self.assertEqual(good.describe_collection("k").stats["rows"], before["rows"])
            self.assertIsInstance(cm.exception, QuarryError)


class Programs(unittest.TestCase):
    def test_rag_example(self):
        rag = os.path.join(ROOT, "clients", "python", "examples", "rag.py")
        out = subprocess.run([sys.executable, rag, "--addr", SRV.addr,
                              "how warm should the dough be?"],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("stored 5 chunks", out.stdout)
        self.assertIn("Mixing and fermentation", out.stdout.split("--- prompt ---")[0])

    def test_embed_program(self):
        out = subprocess.run([sys.executable, "-m", "quarry.embed", "jazz", "piano"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        v = json.loads(out.stdout)
        self.assertEqual(len(v), 64)
        self.assertAlmostEqual(sum(x * x for x in v), 1.0, places=4)

    def test_cli_remote(self):
        if not QUARRY_CLI:
            self.skipTest("QUARRY_CLI is not set")
        q = [QUARRY_CLI, "--remote", SRV.addr]

        def run(*args, ok=True):
            r = subprocess.run(q + list(args), capture_output=True, text=True, timeout=60)
            if ok:
                self.assertEqual(r.returncode, 0, r.stderr)
            return r

        run("create", "cli_c", "--dim", "3", "--metric", "cosine")
        self.assertIn("cli_c", run("list").stdout.split())
        rows = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
        for i in range(20):
            rows.write(json.dumps({"id": "c%d" % i, "vector": [1, i, 0.5], "text": "row %d" % i,
                                   "metadata": {"g": i % 2}}) + "\n")
        rows.close()
        self.assertIn("imported 20 rows", run("import", "cli_c", rows.name).stdout)
        os.unlink(rows.name)
        self.assertIn("rows: 20", run("stats", "cli_c").stdout)
        hits = json.loads(run("search", "cli_c", "--vector", "[1, 7, 0.5]", "--k", "3").stdout)
        self.assertEqual(hits["hits"][0]["id"], "c7")
        got = json.loads(run("get", "cli_c", "c3").stdout)
        self.assertEqual(got["text"], "row 3")
        self.assertEqual(got["metadata"], {"g": 1})
        # --update: a partial update (metadata only; text and vector stay)
        upd = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
        upd.write('{"id":"c4","metadata":{"g":7},"text":"ignored"}\n')
        upd.close()
        self.assertIn("updated 1 rows",
                      run("import", "cli_c", upd.name, "--update", "metadata").stdout)
        got = json.loads(run("get", "cli_c", "c4").stdout)
        self.assertEqual((got["text"], got["metadata"]), ("row 4", {"g": 7}))
        self.assertEqual(len(got["vector"]), 3)
        missing = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
        missing.write('{"id":"c5","text":"x"}\n{"id":"ghost","text":"y"}\n')
        missing.close()
        r = run("import", "cli_c", missing.name, "--update", "text", ok=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("NOT_FOUND", r.stderr)
        self.assertIn("ghost", r.stderr)
        self.assertEqual(json.loads(run("get", "cli_c", "c5").stdout)["text"], "row 5")
        r = run("import", "cli_c", missing.name, "--update", "nope", ok=False)
        self.assertEqual(r.returncode, 1)
        os.unlink(upd.name)
        os.unlink(missing.name)
        self.assertIn("deleted 1 of 2 ids", run("delete", "cli_c", "c3", "nope").stdout)
        r = run("get", "cli_c", "c3", ok=False)
        self.assertEqual(r.returncode, 2)
        r = run("search", "cli_c", "--vector", "[1, 2]", "--k", "3", ok=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("INVALID_ARGUMENT", r.stderr)
        r = run("stats", "nope", ok=False)
        self.assertIn("NOT_FOUND", r.stderr)
        run("drop", "cli_c")

        # the same import rules as local mode: no --dim is text-only, and BEIR
        # rows index the title with the text (one shared row parser)
        run("create", "cli_t")
        beir = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
        beir.write('{"_id":"b1","title":"Glaciers","text":"Ice moves."}\n'
                   '{"_id":"b2","title":"Deserts","text":"Sand."}\n')
        beir.close()
        run("import", "cli_t", beir.name)
        os.unlink(beir.name)
        out = run("search", "cli_t", "--text", "glaciers", "--k", "2", "--format", "ids").stdout
        self.assertEqual(out.split(), ["b1"])

        # IVF-PQ, with the local CLI's options and stats lines
        run("create", "cli_ivf", "--dim", "4", "--index", "ivfpq", "--nlist", "8", "--pq-m",
            "4", "--nprobe", "4", "--refine", "2", "--train-rows", "1000000")
        rows = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
        for i in range(600):
            rows.write(json.dumps({"id": "i%d" % i, "vector": vec(i, 4)}) + "\n")
        rows.close()
        run("import", "cli_ivf", rows.name)
        os.unlink(rows.name)
        out = run("stats", "cli_ivf").stdout
        for line in ("index: ivfpq", "ivf_nlist: 8", "pq_m: 4", "ivf_nprobe: 4",
                     "ivf_refine: 2", "ivf_train_rows: 1000000", "ivf_trained_nlist: 0",
                     "ivf_training: 0", "ivf_rows: 0"):
            self.assertIn(line + "\n", out)
        out = run("train", "cli_ivf").stdout
        self.assertIn("trained cli_ivf: nlist 8, pq_m 4, 600 rows encoded in ", out)
        st = json.loads(run("stats", "cli_ivf", "--json").stdout)
        self.assertEqual((st["ivf_trained_nlist"], st["ivf_trained_pq_m"], st["ivf_rows"]),
                         (8, 4, 600))
        self.assertGreaterEqual(st["ivf_code_bytes"], 600 * 4)
        out = run("search", "cli_ivf", "--vector", json.dumps(vec(42, 4)), "--k", "3",
                  "--format", "ids", "--nprobe", "8", "--refine", "4").stdout
        self.assertEqual(out.split()[0], "i42")
        r = run("search", "cli_ivf", "--vector", json.dumps(vec(42, 4)), "--refine", "5000",
                ok=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("INVALID_ARGUMENT", r.stderr)
        r = run("train", "cli_t", ok=False)  # a flat (text-only) collection
        self.assertEqual(r.returncode, 2)
        self.assertIn("UNIMPLEMENTED", r.stderr)
        self.assertIn("not ivfpq", r.stderr)
        r = run("create", "cli_bad", "--dim", "4", "--index", "ivfpq", "--pq-m", "5", ok=False)
        self.assertEqual(r.returncode, 2)
        self.assertIn("INVALID_ARGUMENT", r.stderr)
        run("drop", "cli_ivf")
        run("drop", "cli_t")


if __name__ == "__main__":
    unittest.main(verbosity=2)
