/* SPDX-License-Identifier: MIT */
/*
 * demo.c -- `quarryd --demo`: the collection "demo" for the quick start.
 *
 * 2,000 short generated articles over 8 topics, each with metadata
 * {"topic", "year", "tags"} and a 64-d vector from the hashing embedder
 * below, so that clients can embed a question the same way (the Python
 * client's quarry.embed.hash_embed) and get sensible neighbours without a
 * model. The generator is deterministic: the same rows on every machine.
 *
 * The hashing embedder (also in clients/python/quarry/embed.py): tokens are
 * maximal runs of ASCII letters/digits and non-ASCII bytes, ASCII letters
 * lowercased, tokens shorter than 3 bytes skipped; each token adds +1 or -1
 * (the top bit of its FNV-1a 64-bit hash) at dimension hash % dim; the vector
 * is then scaled to unit length (an empty text gives the first unit vector).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "rpc/rpc.h"

#define DEMO_NAME "demo"
#define DEMO_DIM 64
#define DEMO_ROWS 2000

static void hash_embed(const char *text, float *v, uint32_t dim) {
    memset(v, 0, dim * sizeof *v);
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        while (*p && !(*p >= 0x80 || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                       (*p >= 'A' && *p <= 'Z')))
            p++;
        if (!*p) break;
        uint64_t h = 14695981039346656037ull;
        size_t len = 0;
        while (*p >= 0x80 || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
               (*p >= 'A' && *p <= 'Z')) {
            unsigned char ch = (*p >= 'A' && *p <= 'Z') ? (unsigned char)(*p + 32) : *p;
            h = (h ^ ch) * 1099511628211ull;
            p++, len++;
        }
        if (len >= 3) v[h % dim] += (h >> 63) ? -1.0f : 1.0f;
    }
    double norm = 0;
    for (uint32_t i = 0; i < dim; i++) norm += (double)v[i] * v[i];
    if (norm == 0) {
        v[0] = 1;
        return;
    }
    float inv = (float)(1.0 / sqrt(norm));
    for (uint32_t i = 0; i < dim; i++) v[i] *= inv;
}

static const char *const TOPICS[8] = {"cooking", "astronomy", "databases", "music",
                                      "travel",  "gardening", "football",  "finance"};
static const char *const WORDS[8][8] = {
    {"recipe", "garlic", "oven", "pasta", "sauce", "spices", "bread", "dinner"},
    {"telescope", "galaxy", "planet", "orbit", "comet", "nebula", "stars", "eclipse"},
    {"index", "query", "transaction", "storage", "replication", "schema", "vector", "latency"},
    {"guitar", "melody", "concert", "rhythm", "album", "piano", "chorus", "jazz"},
    {"passport", "flight", "hotel", "island", "train", "museum", "beach", "itinerary"},
    {"tomatoes", "compost", "seeds", "roses", "soil", "pruning", "greenhouse", "harvest"},
    {"goal", "striker", "league", "penalty", "midfield", "coach", "stadium", "referee"},
    {"stocks", "bonds", "inflation", "budget", "interest", "dividend", "savings", "market"}};
static const char *const OPENERS[4] = {"A short note on", "Why everyone talks about",
                                       "A beginner's guide to", "Ten facts about"};

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int rpc_demo_load(quarry_db *db) {
    quarry_coll *coll = NULL;
    if (quarry_collection_open(db, DEMO_NAME, &coll) == QUARRY_OK) {
        quarry_collection_close(coll);
        rpc_log(LOG_INFO, "demo", NULL, "collection=%s state=present", DEMO_NAME);
        return 0;
    }
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = DEMO_DIM;
    cfg.metric = QUARRY_METRIC_COSINE;
    cfg.index = QUARRY_INDEX_HNSW;
    int rc = quarry_collection_create(db, DEMO_NAME, &cfg, &coll);
    if (rc) return rc;
    quarry_batch *b = NULL;
    uint64_t seed = 2024;
    float v[DEMO_DIM];
    if ((rc = quarry_batch_new(coll, &b))) goto out;
    for (int i = 0; i < DEMO_ROWS; i++) {
        int t = i % 8;
        const char *const *w = WORDS[t];
        char id[32], text[256], meta[160];
        int a = (int)(splitmix(&seed) % 8), bw = (int)(splitmix(&seed) % 8),
            cw = (int)(splitmix(&seed) % 8);
        snprintf(id, sizeof id, "doc-%d", i);
        snprintf(text, sizeof text, "%s %s: %s, %s and %s.",
                 OPENERS[splitmix(&seed) % 4], TOPICS[t], w[a], w[bw], w[cw]);
        snprintf(meta, sizeof meta, "{\"topic\":\"%s\",\"year\":%d,\"tags\":[\"demo\",\"%s\"]}",
                 TOPICS[t], 2015 + i % 10, w[a]);
        hash_embed(text, v, DEMO_DIM);
        quarry_row row = {.id = id, .vector = v, .dim = DEMO_DIM, .text = text, .metadata = meta};
        if ((rc = quarry_batch_upsert(b, &row))) goto out;
        if ((i + 1) % 500 == 0 && (rc = quarry_batch_commit(b))) goto out;
    }
    rpc_log(LOG_INFO, "demo", NULL, "collection=%s state=created rows=%d dim=%d", DEMO_NAME,
            DEMO_ROWS, DEMO_DIM);
out:
    quarry_batch_free(b);
    quarry_collection_close(coll);
    return rc;
}
