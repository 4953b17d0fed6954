#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# demo-local.sh QUARRY_BINARY -- the embedded (no server) demo: create a
# database, import a small generated data set (2,000 rows of 16-d vectors in 8
# clusters, with text and metadata), search it (plain, filtered, many queries with timing), fetch
# and delete rows, and show that everything survives a restart (every command
# below is a new process that reopens the database from disk).
set -euo pipefail
Q=${1:-build/clients/cli/quarry}
DB=${DEMO_DB:-demo-local-db}
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT
rm -rf "$DB"

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

# 8 cluster centres; each row = centre + small noise. Deterministic (awk srand).
awk -v n=2000 -v d=16 'BEGIN {
    srand(7);
    split("news sports science music travel food film books", topic, " ");
    for (c = 0; c < 8; c++) for (j = 0; j < d; j++) ctr[c, j] = (rand() * 2 - 1);
    for (i = 0; i < n; i++) {
        c = i % 8;
        printf "{\"id\":\"doc-%d\",\"vector\":[", i;
        for (j = 0; j < d; j++) printf "%s%.5f", (j ? "," : ""), ctr[c, j] + (rand() - 0.5) * 0.2;
        printf "],\"text\":\"A short %s article, number %d\",", topic[c + 1], i;
        printf "\"metadata\":{\"topic\":\"%s\",\"year\":%d,\"tags\":[\"demo\",\"c%d\"]}}\n", topic[c + 1], 2015 + i % 10, c;
    }
    # the queries: one near each centre
    for (c = 0; c < 8; c++) {
        printf "[" > "/dev/stderr";
        for (j = 0; j < d; j++) printf "%s%.5f", (j ? "," : ""), ctr[c, j] > "/dev/stderr";
        printf "]\n" > "/dev/stderr";
    }
}' > "$DATA/rows.jsonl" 2> "$DATA/queries.txt"
Q1=$(head -n 1 "$DATA/queries.txt")

run "$Q" "$DB" create articles --dim 16 --metric cosine
run "$Q" "$DB" import articles "$DATA/rows.jsonl"
run "$Q" "$DB" list
say "$Q $DB search articles --vector '<near the news centre>' --k 5"
"$Q" "$DB" search articles --vector "$Q1" --k 5
say "$Q $DB search articles --vector '<same>' --k 5 --filter '{\"year\": 2019}' --format ids"
"$Q" "$DB" search articles --vector "$Q1" --k 5 --filter '{"year": 2019}' --format ids
run "$Q" "$DB" get articles doc-8
run "$Q" "$DB" delete articles doc-0 doc-8
say "$Q $DB search articles --vector '<same>' --k 3 --format ids   # doc-0 and doc-8 are gone"
"$Q" "$DB" search articles --vector "$Q1" --k 3 --format ids
run "$Q" "$DB" stats articles
echo
echo "The database is in ./$DB (segment log + MANIFEST). Try: $Q $DB"
