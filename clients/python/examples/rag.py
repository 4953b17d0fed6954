#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The retrieval half of RAG with Quarry: chunk a document, store the chunks, attach
their vectors, and fetch the best context for a question with a hybrid query.

    /usr/bin/python3 clients/python/examples/rag.py --addr 127.0.0.1:7070 \\
        "how warm should the dough be?"

Vectors come from quarry.hash_embed, a deterministic hashing embedder that needs
no model (it matches words, not meaning); swap in a real embedding model for
real data. The hybrid query fuses the vector ranking with BM25 keyword ranking
(reciprocal rank fusion); a server whose collection has no text index yet
answers the text part UNIMPLEMENTED, and the example then falls back to the
vector ranking alone.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from quarry import Client, Unimplemented, hash_embed  # noqa: E402

DOC = """# Sourdough field guide

A sourdough loaf needs only flour, water, salt and a lively starter. Time does
the rest: the wild yeast raises the dough while lactic bacteria give it its
sour taste.

## The starter

Feed the starter equal weights of flour and water once a day. It is ready to
bake with when it doubles in four to six hours and smells pleasantly sour.
A starter kept in the fridge needs two feedings at room temperature first.

## Mixing and fermentation

Mix 1000 g of flour with 700 g of water and rest it for an hour (the
autolyse). Add 200 g of starter and 20 g of salt. Bulk fermentation takes four
to six hours; keep the dough warm, ideally between 24 and 26 degrees Celsius,
and fold it every half hour for the first two hours.

## Shaping and proofing

Shape the dough into a tight ball, place it seam side up in a floured basket
and proof it in the fridge overnight. Cold proofing deepens the flavour and
makes scoring easier.

## Baking

Preheat the oven with a Dutch oven inside to 250 degrees Celsius. Bake covered
for 20 minutes, then uncovered for another 20 to 25 minutes until the crust is
deep brown. Let the loaf cool for an hour before cutting it.
"""

DOC_ID = "sourdough-guide"
DIM = 64


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("question", nargs="*", default=["how", "warm", "should", "the", "dough",
                                                    "be", "during", "fermentation?"])
    ap.add_argument("--addr", default=os.environ.get("QUARRY_ADDR", "127.0.0.1:7070"))
    ap.add_argument("--api-key", default=os.environ.get("QUARRY_API_KEY"))
    ap.add_argument("--collection", default="rag")
    ap.add_argument("-k", type=int, default=3)
    args = ap.parse_args()
    question = " ".join(args.question)

    with Client(args.addr, api_key=args.api_key) as db:
        db.create_collection(args.collection, dim=DIM, metric="cosine", index="hnsw",
                             if_not_exists=True)

        # 1. Chunk at markdown headings (each chunk keeps its heading path) and store the
        #    chunks as rows "sourdough-guide#0", "#1", ... in one batch, text only: the
        #    keyword side can serve them at once.
        stored = db.upsert_document(args.collection, DOC_ID, DOC, metadata={"source": "guide"},
                                    strategy="markdown", max=400)
        print("stored %d chunks of %r in collection %r" % (len(stored), DOC_ID, args.collection))

        # 1b. Embed the stored chunks (with a real model this is the slow part, often done
        #     later or elsewhere) and attach the vectors without resending the rows: a
        #     partial update keeps each chunk's text and metadata as they are.
        ids = ["%s#%d" % (DOC_ID, i) for i in range(len(stored))]
        db.upsert(args.collection, ids, vectors=[hash_embed(c.text, DIM) for c in stored],
                  update=["vector"])

        # 2. Retrieve: vector + keyword ranking fused with RRF, only this document's chunks.
        qv = hash_embed(question, DIM)
        common = dict(k=args.k, filter={"_parent": DOC_ID}, explain=True,
                      fields=("text", "metadata"))
        try:
            hits = db.query(args.collection, vector=qv, text=question, **common)
            mode = "hybrid (vector + BM25, RRF)"
        except Unimplemented as e:
            print("note: %s -- using the vector ranking alone" % e.details)
            hits = db.query(args.collection, vector=qv, **common)
            mode = "vector"

        # 3. The context block a prompt would carry, with citations into the document.
        print("\nquestion: %s\nretrieval: %s\n" % (question, mode))
        context = []
        for rank, h in enumerate(hits, 1):
            m = h.metadata
            where = " > ".join(m.get("_heading", [])) or "(top)"
            print("[%d] %s  bytes %d-%d  score %.4f  %s" % (rank, where, m["_start"], m["_end"],
                                                           h.score, h.explain))
            context.append("[%d] %s" % (rank, h.text))
        print("\n--- prompt ---")
        print("Answer the question using only the context; cite it as [n].\n")
        print("Context:\n" + "\n\n".join(context))
        print("\nQuestion: " + question)


if __name__ == "__main__":
    main()
