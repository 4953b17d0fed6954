# SPDX-License-Identifier: MIT
"""Python client for Quarry, the vector database and hybrid search engine.

    >>> from quarry import Client
    >>> with Client("127.0.0.1:7070") as db:
    ...     db.create_collection("docs", dim=64, metric="cosine", index="hnsw")
    ...     db.upsert("docs", ["a", "b"], vectors=numpy_array, texts=["...", "..."])
    ...     hits = db.query("docs", vector=q, k=5, filter={"lang": "en"})
    ...     db.create_collection("big", dim=128, index="ivfpq", nlist=1024, pq_m=32)
    ...     db.train("big")          # or wait for train_rows vectors
    ...     db.query("big", vector=q, k=10, nprobe=32, refine=8)

Errors are raised as QuarryError subclasses (InvalidArgument, NotFound, ...)
carrying the gRPC status code and the server's message. Needs Debian's
python3-grpcio and python3-protobuf (use /usr/bin/python3). The gRPC parts are
imported on first use, so ``python3 -m quarry.embed`` works without them.
"""
from .embed import hash_embed

__all__ = ["Client", "QuarryError", "InvalidArgument", "NotFound", "AlreadyExists",
           "ResourceExhausted", "FailedPrecondition", "Unauthenticated", "Unimplemented",
           "Unavailable", "DeadlineExceeded", "Cancelled", "Hit", "Row", "Chunk",
           "CollectionInfo", "TrainResult", "hash_embed"]
__version__ = "0.1.0"


def __getattr__(name):
    if name in __all__:
        from . import client
        return getattr(client, name)
    raise AttributeError("module 'quarry' has no attribute %r" % name)
