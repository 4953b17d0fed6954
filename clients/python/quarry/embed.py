# SPDX-License-Identifier: MIT
"""A tiny deterministic text embedder for demos and tests (no model needed).

``hash_embed(text, dim)`` is the "hashing trick": tokens are maximal runs of
ASCII letters/digits and non-ASCII bytes of the UTF-8 text, ASCII letters
lowercased, and tokens shorter than 3 bytes are skipped ("a", "to", "is");
each token adds +1 or -1 (the top bit of its FNV-1a 64-bit hash) at dimension
``hash % dim``; the vector is scaled to unit length (an empty
text gives the first unit vector). ``quarryd --demo`` embeds its articles the
same way (rpc/demo.c), so a question embedded here finds articles that share
its words. It captures word overlap, not meaning: use a real model for real
data.

Run as a program it prints the vector as JSON, for the CLI::

    quarry --remote 127.0.0.1:7070 search demo --vector "$(python3 -m quarry.embed 'jazz piano')"
"""
import json
import math
import sys

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
MIN_TOKEN = 3


def _tokens(data):
    tok = bytearray()
    for b in data:
        if b >= 0x80 or 48 <= b <= 57 or 97 <= b <= 122:
            tok.append(b)
        elif 65 <= b <= 90:
            tok.append(b + 32)
        elif tok:
            yield bytes(tok)
            tok.clear()
    if tok:
        yield bytes(tok)


def hash_embed(text, dim=64):
    """Embeds `text` (str or UTF-8 bytes) as a unit vector of `dim` floats (a list)."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    v = [0.0] * dim
    for tok in _tokens(data):
        if len(tok) < MIN_TOKEN:
            continue
        h = _FNV_OFFSET
        for b in tok:
            h = ((h ^ b) * _FNV_PRIME) & _MASK
        v[h % dim] += -1.0 if h >> 63 else 1.0
    norm = math.sqrt(sum(x * x for x in v))
    if norm == 0:
        v[0] = 1.0
        return v
    return [x / norm for x in v]


def main(argv=None):
    """Prints the embedding of the words on the command line as a JSON array."""
    argv = sys.argv[1:] if argv is None else argv
    dim = 64
    if len(argv) >= 2 and argv[0] == "--dim":
        dim, argv = int(argv[1]), argv[2:]
    print(json.dumps([round(x, 6) for x in hash_embed(" ".join(argv), dim)]))


if __name__ == "__main__":
    main()
