/* SPDX-License-Identifier: MIT */
/*
 * example.c -- the Quarry C API on one page: open a database, create a 4-d
 * cosine collection, upsert three rows with text and metadata, read one back,
 * run a filtered search and close. It uses nothing but quarry.h and links the
 * shared library. Usage: example [DIR]   (default: a new temporary directory)
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "quarry.h"

/* Every call returns QUARRY_OK or an error code; quarry_errmsg() says why. */
#define CHECK(call)                                                                     \
    do {                                                                                \
        int rc_ = (call);                                                               \
        if (rc_ != QUARRY_OK) {                                                         \
            fprintf(stderr, "%s: %s: %s\n", #call, quarry_errstr(rc_), quarry_errmsg()); \
            exit(1);                                                                    \
        }                                                                               \
    } while (0)

int main(int argc, char **argv) {
    char tmp[4096];
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(tmp, sizeof tmp, "%s/quarry-example-XXXXXX", base);
    const char *dir = argc > 1 ? argv[1] : mkdtemp(tmp);
    if (!dir) {
        perror("mkdtemp");
        return 1;
    }

    quarry_db *db;
    CHECK(quarry_open(dir, NULL, &db));
    quarry_collection_config cfg;
    quarry_collection_config_init(&cfg);
    cfg.dim = 4;
    cfg.metric = QUARRY_METRIC_COSINE;
    quarry_coll *coll;
    CHECK(quarry_collection_create(db, "animals", &cfg, &coll));

    const float v[3][4] = {{1, 0, 0, 0}, {0.9f, 0.2f, 0, 0}, {0, 0, 1, 0.1f}};
    const quarry_row rows[3] = {
        {.id = "cat", .vector = v[0], .dim = 4, .text = "a cat", .metadata = "{\"legs\":4}"},
        {.id = "lynx", .vector = v[1], .dim = 4, .text = "a lynx", .metadata = "{\"legs\":4}"},
        {.id = "owl", .vector = v[2], .dim = 4, .text = "an owl", .metadata = "{\"legs\":2}"},
    };
    CHECK(quarry_upsert(coll, rows, 3)); /* one atomic, durable batch */

    quarry_doc *doc;
    size_t len, mlen;
    CHECK(quarry_get(coll, "lynx", 0, &doc));
    printf("lynx: %s %s\n", quarry_doc_text(doc, &len), quarry_doc_metadata(doc, &mlen));
    quarry_doc_free(doc);

    const float query[4] = {1, 0.1f, 0, 0};
    quarry_search_params params;
    quarry_search_params_init(&params);
    params.filter = "{\"legs\":4}"; /* only four-legged rows */
    quarry_result *res;
    CHECK(quarry_search(coll, query, 4, 2, &params, &res));
    for (size_t i = 0; i < quarry_result_count(res); i++) {
        const char *id = quarry_result_id(res, i, &len);
        printf("hit %zu: %.*s distance %.4f\n", i, (int)len, id, quarry_result_distance(res, i));
    }
    quarry_result_free(res);

    quarry_collection_close(coll);
    CHECK(quarry_close(db));
    printf("database in %s\n", dir);
    return 0;
}
