# SPDX-License-Identifier: MIT
"""The Quarry gRPC client.

A thin, idiomatic layer over the generated stubs of rpc/proto/quarry/v1/quarry.proto:
plain Python values in (lists, dicts, numpy arrays), small dataclasses out, and every
failed call raised as a :class:`QuarryError` subclass that carries the gRPC status.
"""
import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import grpc

from . import _stubs

pb, pb_grpc, health_pb, health_grpc = _stubs.load()

__all__ = [
    "Client", "QuarryError", "InvalidArgument", "NotFound", "AlreadyExists",
    "ResourceExhausted", "FailedPrecondition", "Unauthenticated", "Unimplemented",
    "Unavailable", "DeadlineExceeded", "Cancelled", "Hit", "Row", "Chunk", "CollectionInfo",
    "TrainResult",
]


# --------------------------------------------------------------------------- errors

class QuarryError(Exception):
    """A call failed. ``code`` is the grpc.StatusCode, ``details`` the server's message."""

    def __init__(self, code, details):
        super().__init__("%s: %s" % (code.name, details))
        self.code = code
        self.details = details


class InvalidArgument(QuarryError):
    """The request is wrong (bad id, dimension, NaN, JSON, filter, k ...)."""


class NotFound(QuarryError):
    """No such collection (or, for a partial update, no such row)."""


class AlreadyExists(QuarryError):
    """The collection exists."""


class ResourceExhausted(QuarryError):
    """A server limit (message size, batch rows, queue) or memory/disk ran out."""


class FailedPrecondition(QuarryError):
    """The database refuses writes (read-only, or failed and needing a restart)."""


class Unauthenticated(QuarryError):
    """The API key is missing or wrong."""


class Unimplemented(QuarryError):
    """A feature the server or collection cannot serve (yet)."""


class Unavailable(QuarryError):
    """The server cannot be reached or is shutting down; retrying later may work."""


class DeadlineExceeded(QuarryError):
    """The call's timeout passed."""


class Cancelled(QuarryError):
    """The call was cancelled, or the engine stopped it (a Train whose collection was
    dropped meanwhile)."""


_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.UNIMPLEMENTED: Unimplemented,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def _raise(err):
    code = err.code()
    raise _ERRORS.get(code, QuarryError)(code, err.details()) from None


# --------------------------------------------------------------------------- results

@dataclass
class Hit:
    """One query result. ``distance`` is None when the vector retriever did not return the row;
    ``explain`` maps "vector"/"text" to (rank, raw_score) when asked for."""
    id: str
    score: float
    distance: Optional[float] = None
    text: Optional[str] = None
    metadata: Optional[Dict[str, Any]] = None
    vector: Optional[List[float]] = None
    explain: Dict[str, tuple] = field(default_factory=dict)


@dataclass
class Row:
    """A stored row (fields not asked for are None)."""
    id: str
    vector: Optional[List[float]] = None
    text: Optional[str] = None
    metadata: Optional[Dict[str, Any]] = None


@dataclass
class Chunk:
    """A chunk: byte offsets [start, end) into the UTF-8 text, counts, heading path, text."""
    start: int
    end: int
    chars: int
    words: int
    headings: List[str]
    text: str


@dataclass
class TrainResult:
    """The IVF-PQ index serving after :meth:`Client.train`: its lists, code bytes per
    vector and rows; ``training`` is True while a training still runs (wait=False)."""
    nlist: int
    pq_m: int
    rows: int
    training: bool


@dataclass
class CollectionInfo:
    """A collection's name, resolved configuration and statistics (plain dicts)."""
    name: str
    config: Dict[str, Any]
    stats: Dict[str, int]


_METRICS = {"l2": pb.METRIC_L2, "ip": pb.METRIC_IP, "cosine": pb.METRIC_COSINE}
_INDEXES = {"flat": pb.INDEX_FLAT, "hnsw": pb.INDEX_HNSW, "ivfpq": pb.INDEX_IVFPQ}
_DURABILITY = {"sync": pb.DURABILITY_SYNC, "interval": pb.DURABILITY_INTERVAL,
               "none": pb.DURABILITY_NONE}
_FUSIONS = {"rrf": pb.FUSION_RRF, "relative": pb.FUSION_RELATIVE, "dbsf": pb.FUSION_DBSF}
_FIELDS = {"text": pb.FIELD_TEXT, "metadata": pb.FIELD_METADATA, "vector": pb.FIELD_VECTOR}
_STRATEGIES = {"sentence": pb.CHUNK_SENTENCE, "fixed_chars": pb.CHUNK_FIXED_CHARS,
               "fixed_words": pb.CHUNK_FIXED_WORDS, "recursive": pb.CHUNK_RECURSIVE,
               "markdown": pb.CHUNK_MARKDOWN}
_PARAMS = ("interval_ms", "hnsw_m", "hnsw_ef_construction", "hnsw_ef_search", "ivf_nlist",
           "pq_m", "ivf_nprobe", "ivf_refine", "ivf_train_rows")
# Short keyword names for create_collection (the CLI's option names).
_ALIASES = {"nlist": "ivf_nlist", "nprobe": "ivf_nprobe", "refine": "ivf_refine",
            "train_rows": "ivf_train_rows"}
_NO_TIMEOUT = object()  # _call: the client's timeout


def _enum(table, value, what):
    try:
        return table[value]
    except KeyError:
        raise ValueError("unknown %s %r (one of %s)" % (what, value, ", ".join(table))) from None


def _name(table, value):
    for k, v in table.items():
        if v == value:
            return k
    return str(value)


def _vectors(vectors, n=None):
    """Rows of floats from a numpy array (n, dim), a list of lists, or None."""
    if vectors is None:
        return None
    if hasattr(vectors, "tolist"):  # numpy (or anything array-like with tolist)
        vectors = vectors.tolist()
    vectors = [list(map(float, v)) if v is not None else None for v in vectors]
    if n is not None and len(vectors) != n:
        raise ValueError("%d vectors for %d ids" % (len(vectors), n))
    return vectors


def _vector(v):
    if v is None:
        return None
    return [float(x) for x in (v.tolist() if hasattr(v, "tolist") else v)]


def _metadata(m):
    if m is None:
        return ""
    return m if isinstance(m, str) else json.dumps(m, separators=(",", ":"))


def _info(msg):
    cfg = {f.name: getattr(msg.config, f.name) for f in msg.config.DESCRIPTOR.fields}
    cfg["metric"] = _name(_METRICS, msg.config.metric)
    cfg["index"] = _name(_INDEXES, msg.config.index)
    cfg["durability"] = _name(_DURABILITY, msg.config.durability)
    stats = {f.name: getattr(msg.stats, f.name) for f in msg.stats.DESCRIPTOR.fields}
    return CollectionInfo(msg.name, cfg, stats)


def _chunk_options(strategy, max, overlap):
    o = pb.ChunkOptions(strategy=_enum(_STRATEGIES, strategy, "chunk strategy"), max=max or 0)
    if overlap is not None:
        if overlap == 0:
            o.no_overlap = True
        else:
            o.overlap = overlap
    return o


# --------------------------------------------------------------------------- client

class Client:
    """A connection to quarryd.

    ``addr`` is "HOST:PORT" (or "unix:PATH"); ``api_key`` is sent as
    ``authorization: Bearer <key>``; ``tls_ca`` (a PEM file path) switches to TLS
    with those roots; ``timeout`` is the per-call deadline in seconds. Thread-safe
    (one gRPC channel). Use as a context manager or call :meth:`close`.
    """

    def __init__(self, addr="127.0.0.1:7070", api_key=None, *, tls_ca=None, timeout=30.0,
                 max_message_bytes=64 << 20):
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes)]
        if tls_ca:
            with open(tls_ca, "rb") as f:
                creds = grpc.ssl_channel_credentials(root_certificates=f.read())
            self._channel = grpc.secure_channel(addr, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(addr, options=options)
        self._stub = pb_grpc.QuarryStub(self._channel)
        self._health = health_grpc.HealthStub(self._channel)
        self._metadata = (("authorization", "Bearer " + api_key),) if api_key else None
        self.timeout = timeout

    def close(self):
        """Closes the channel."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request, stub=None, timeout=_NO_TIMEOUT):
        if timeout is _NO_TIMEOUT:
            timeout = self.timeout
        if timeout is not None and timeout <= 0:  # grpc would take 0 for "no deadline"
            raise DeadlineExceeded(grpc.StatusCode.DEADLINE_EXCEEDED,
                                   f"{method}: the timeout ({timeout} s) has already passed")
        try:
            return getattr(stub or self._stub, method)(request, timeout=timeout,
                                                       metadata=self._metadata)
        except grpc.RpcError as e:
            _raise(e)

    # ----------------------------------------------------------------- collections

    def health(self, service=""):
        """The server's serving status: "SERVING" or "NOT_SERVING" (while shutting down)."""
        r = self._call("Check", health_pb.HealthCheckRequest(service=service), self._health)
        return health_pb.HealthCheckResponse.ServingStatus.Name(r.status)

    def create_collection(self, name, dim=0, metric="l2", index="flat", durability="sync", *,
                          if_not_exists=False, **params):
        """Creates a collection (dim 0: text only). Index parameters as keywords
        (0 or absent = the default):

        * hnsw: ``hnsw_m``, ``hnsw_ef_construction``, ``hnsw_ef_search``;
        * ivfpq: ``nlist`` (``ivf_nlist``), ``pq_m``, ``nprobe`` (``ivf_nprobe``),
          ``refine`` (``ivf_refine``: re-rank refine*k candidates exactly, 1 = off,
          default 4), ``train_rows`` (``ivf_train_rows``: train automatically once this
          many rows have a vector);
        * ``interval_ms`` for durability="interval".

        Returns its CollectionInfo."""
        for short, full in _ALIASES.items():
            if short in params:
                if full in params:
                    raise TypeError("give %s or %s, not both" % (short, full))
                params[full] = params.pop(short)
        unknown = set(params) - set(_PARAMS)
        if unknown:
            raise TypeError("unknown collection parameters: %s" % ", ".join(sorted(unknown)))
        params = {k: (0 if v is None else v) for k, v in params.items()}
        cfg = pb.CollectionConfig(dim=dim, metric=_enum(_METRICS, metric, "metric"),
                                  index=_enum(_INDEXES, index, "index"),
                                  durability=_enum(_DURABILITY, durability, "durability"),
                                  **params)
        return _info(self._call("CreateCollection", pb.CreateCollectionRequest(
            name=name, config=cfg, if_not_exists=if_not_exists)))

    def drop_collection(self, name, if_exists=False):
        """Drops a collection; returns whether it existed."""
        return self._call("DropCollection",
                          pb.DropCollectionRequest(name=name, if_exists=if_exists)).dropped

    def list_collections(self):
        """Every collection's CollectionInfo, sorted by name."""
        return [_info(c) for c in
                self._call("ListCollections", pb.ListCollectionsRequest()).collections]

    def describe_collection(self, name):
        """One collection's CollectionInfo."""
        return _info(self._call("DescribeCollection", pb.DescribeCollectionRequest(name=name)))

    def stats(self, collection=None):
        """{"collections": {name: CollectionInfo}, "server": {...}}."""
        r = self._call("Stats", pb.StatsRequest(collection=collection or ""))
        server = {f.name: getattr(r.server, f.name) for f in r.server.DESCRIPTOR.fields}
        return {"collections": {c.name: _info(c) for c in r.collections}, "server": server}

    def train(self, collection, wait=True, *, timeout=None):
        """(Re)trains an IVF-PQ collection's index on the vectors it holds (it also trains
        by itself once it holds ``train_rows`` vectors). Readers and writers go on
        meanwhile. ``wait``: return when the training is done (raising InvalidArgument
        when there are fewer vectors than max(256, nlist)); otherwise as soon as it
        started (watch ``stats["ivf_training"]``). ``timeout``: seconds for this call;
        None means no deadline with ``wait`` (a large collection trains for minutes) and
        the client's timeout without. Raises Unimplemented for a collection that is not
        ivfpq. Returns a TrainResult (the index serving now)."""
        if timeout is None:
            timeout = None if wait else self.timeout
        r = self._call("Train", pb.TrainRequest(collection=collection, wait=wait),
                       timeout=timeout)
        return TrainResult(r.nlist, r.pq_m, r.rows, r.training)

    # ----------------------------------------------------------------- rows

    def upsert(self, collection, ids, vectors=None, texts=None, metadata=None, *, update=None):
        """Upserts rows as one atomic batch. ``ids`` is a sequence of strings;
        ``vectors`` a numpy array (n, dim) or a list of lists (or None / None items);
        ``texts`` a list of strings; ``metadata`` a list of dicts (or JSON strings).
        A row is replaced whole: fields not given are gone.

        ``update``: a partial update instead, naming the fields to set (any of "text",
        "metadata", "vector", or one such string). Each named field is set from its
        argument, where None (or a None item) clears it; the row keeps its other fields,
        and arguments for fields not named are not sent. Every id must exist (earlier
        ids of the same call count), otherwise NotFound names the id and nothing is
        written. E.g. attach vectors to chunk rows stored by upsert_document without
        them: ``upsert("docs", ["d1#0", "d1#1"], vectors=vs, update=["vector"])``.

        Returns the number of rows upserted (or updated)."""
        ids = list(ids)
        n = len(ids)
        fields = set(_FIELDS)
        if update is not None:
            if isinstance(update, str):
                update = [update]
            fields = set(update)
            for f in fields:
                _enum(_FIELDS, f, "field")  # ValueError for an unknown name
            if not fields:
                raise ValueError("update names no field (give text, metadata and/or vector)")
        vectors = _vectors(vectors if "vector" in fields else None, n)
        texts = texts if "text" in fields else None
        metadata = metadata if "metadata" in fields else None
        for what, seq in (("texts", texts), ("metadata", metadata)):
            if seq is not None and len(seq) != n:
                raise ValueError("%d %s for %d ids" % (len(seq), what, n))
        rows = []
        for i, id_ in enumerate(ids):
            row = pb.Row(id=id_)
            if vectors is not None and vectors[i] is not None:
                row.vector.extend(vectors[i])
            if texts is not None and texts[i] is not None:
                row.text = texts[i]
            if metadata is not None and metadata[i] is not None:
                row.metadata = _metadata(metadata[i])
            rows.append(row)
        req = pb.UpsertRequest(collection=collection, rows=rows)
        if update is not None:
            req.update_fields.extend(sorted(_FIELDS[f] for f in fields))
        return self._call("Upsert", req).upserted

    def delete(self, collection, ids):
        """Deletes rows by id (one atomic batch); returns how many existed."""
        return self._call("Delete", pb.DeleteRequest(collection=collection, ids=list(ids))).deleted

    def get(self, collection, ids, fields=None):
        """Fetches rows by id: a dict id -> Row for the ids found (missing ids are absent).
        ``fields``: any of "text", "metadata", "vector" (default all)."""
        req = pb.GetRequest(collection=collection, ids=list(ids),
                            fields=[_enum(_FIELDS, f, "field") for f in (fields or ())])
        want = set(fields or _FIELDS)
        out = {}
        for r in self._call("Get", req).rows:
            out[r.id] = Row(
                id=r.id,
                vector=list(r.vector) if "vector" in want and len(r.vector) else None,
                text=r.text if "text" in want and r.text else None,
                metadata=json.loads(r.metadata) if "metadata" in want and r.metadata else None)
        return out

    # ----------------------------------------------------------------- queries

    def query(self, collection, vector=None, text=None, k=10, *, filter=None, offset=0,
              fusion="rrf", fusion_param=0.0, explain=False, fields=("text", "metadata"),
              ef=0, exact=False, depth=0, vector_weight=1.0, text_weight=1.0,
              require_all=False, nprobe=0, refine=0, timeout=_NO_TIMEOUT):
        """k-NN (``vector``), BM25 (``text``) or hybrid (both, fused) retrieval.

        ``filter`` is a dict or JSON string; ``fields`` which row fields to return;
        ``explain`` fills Hit.explain with each retriever's (rank, raw score).
        Vector clause knobs (0 = the collection's default): ``ef`` (hnsw beam),
        ``nprobe`` (ivfpq lists probed, <= 65536), ``refine`` (ivfpq re-ranking factor,
        <= 1000, 1 = off); ``exact`` forces an exact scan. ``timeout`` (seconds; default
        the client's) is the call's deadline: the server abandons a search still running
        when it passes, and the call raises DeadlineExceeded.
        Returns a list of Hit, best first."""
        req = pb.QueryRequest(collection=collection, k=k, offset=offset,
                              fusion=_enum(_FUSIONS, fusion, "fusion"), fusion_param=fusion_param,
                              explain=explain,
                              fields=[_enum(_FIELDS, f, "field") for f in (fields or ())])
        if vector is not None:
            req.vector.CopyFrom(pb.VectorClause(vector=_vector(vector), depth=depth, ef=ef,
                                                weight=vector_weight, exact=exact,
                                                nprobe=nprobe or 0, refine=refine or 0))
        if text is not None:
            req.text.CopyFrom(pb.TextClause(text=text, depth=depth, require_all=require_all,
                                            weight=text_weight))
        if filter is not None:
            req.filter = filter if isinstance(filter, str) else json.dumps(filter)
        hits = []
        for h in self._call("Query", req, timeout=timeout).hits:
            hits.append(Hit(
                id=h.id, score=h.score,
                distance=None if math.isnan(h.distance) else h.distance,
                text=h.text if h.text else None,
                metadata=json.loads(h.metadata) if h.metadata else None,
                vector=list(h.vector) if len(h.vector) else None,
                explain={"vector" if e.retriever == pb.RETRIEVER_VECTOR else "text":
                         (e.rank, e.raw_score) for e in h.explain}))
        return hits

    # ----------------------------------------------------------------- chunking

    def chunk(self, text, strategy="sentence", max=0, overlap=None):
        """Chunks a text on the server (nothing is stored). ``max`` 0 and ``overlap``
        None mean the strategy's defaults (include/quarry.h documents them).
        Returns a list of Chunk."""
        r = self._call("Chunk", pb.ChunkRequest(text=text,
                                                options=_chunk_options(strategy, max, overlap)))
        return [Chunk(c.start, c.end, c.chars, c.words, list(c.headings), c.text)
                for c in r.chunks]

    def upsert_document(self, collection, id, text, metadata=None, strategy="sentence", max=0,
                        overlap=None, vectors=None):
        """Chunks `text` on the server and stores the chunks as rows "<id>#0", "<id>#1", ...
        in one atomic batch, with metadata plus _parent, _chunk, _start, _end (and _heading
        for markdown); older chunks of the same document beyond the new count are deleted.
        ``vectors``: one per chunk in order (chunk() with the same options first), optional.
        Returns the stored chunks."""
        req = pb.UpsertDocumentRequest(collection=collection, id=id, text=text,
                                       metadata=_metadata(metadata),
                                       options=_chunk_options(strategy, max, overlap))
        for v in _vectors(vectors) or ():
            req.vectors.add(values=v)
        r = self._call("UpsertDocument", req)
        data = text.encode("utf-8")
        return [Chunk(c.start, c.end, c.chars, c.words, list(c.headings),
                      data[c.start:c.end].decode("utf-8")) for c in r.chunks]
