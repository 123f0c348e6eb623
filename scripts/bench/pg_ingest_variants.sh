#!/usr/bin/env bash
# pg_ingest_variants.sh — what the server itself makes of other ways to ingest the same rows,
# without rasterstage's client in the way (the figures behind "Server-side levers measured
# and not taken" in docs/BENCHMARKS.md, "## load: where the time goes").
#
#   scripts/bench/pg_ingest_variants.sh [REPS [VARIANT...]]
#       REPS: default 3; VARIANTs: default all four below. Needs a superuser DATABASE_URL to a
#       server on this machine: the server reads the COPY files itself.
#
# 16 M rows (a 4000 x 4000 grid, the table shape `load` makes for Float32) are written once
# as 16 binary COPY files of one 1000 x 1000 tile each. Two psql sessions then take alternate
# tiles, one transaction per tile with a ledger insert, as `load --jobs 2` does, into:
#   plain       one table (what `load` does)
#   async       the same with SET synchronous_commit = off
#   leaf        one leaf partition per tile (range on row_idx, then col_idx), created in the
#               tile's transaction, COPY ... FREEZE, then ATTACH PARTITION (validating scan)
#   leafcheck   the same with a CHECK constraint, so that ATTACH skips the scan
# The variants run alternately, REPS times; each line is "variant seconds rows".
set -euo pipefail
REPS="${1:-3}"
shift || true
VARIANTS=("$@")
((${#VARIANTS[@]})) || VARIANTS=(plain async leaf leafcheck)
: "${DATABASE_URL:?set DATABASE_URL (scripts/services.sh does)}"
DIR="$(mktemp -d "${TMPDIR:-/tmp}/rasterstage-ingest.XXXXXX")"
chmod 777 "$DIR"
P=(psql -w -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL")
S=ingest_variants
COLS="(row_idx int4 NOT NULL, col_idx int4 NOT NULL, x float8 NOT NULL, y float8 NOT NULL, value float4 NOT NULL)"
cleanup() { "${P[@]}" -c "DROP SCHEMA IF EXISTS $S CASCADE" >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap cleanup EXIT

"${P[@]}" -c "DO \$\$ BEGIN FOR tr IN 0..3 LOOP FOR tc IN 0..3 LOOP
  EXECUTE format(\$q\$COPY (SELECT r::int4, c::int4, (-180 + (c + 0.5) * 0.045)::float8,
    (90 - (r + 0.5) * 0.045)::float8, (r * 0.001 + c)::float4
    FROM generate_series(%s, %s) r, generate_series(%s, %s) c) TO '$DIR/t_%s_%s.copy' (FORMAT binary)\$q\$,
    tr * 1000, tr * 1000 + 999, tc * 1000, tc * 1000 + 999, tr, tc);
END LOOP; END LOOP; END \$\$"

run() { # VARIANT
    local v="$1" w tr tc i
    "${P[@]}" -c "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S; CREATE TABLE $S.ledger (id text PRIMARY KEY)"
    case "$v" in
    plain | async) "${P[@]}" -c "CREATE TABLE $S.t $COLS" ;;
    leaf*)
        "${P[@]}" -c "CREATE TABLE $S.t $COLS PARTITION BY RANGE (row_idx)"
        for tr in 0 1 2 3; do
            "${P[@]}" -c "CREATE TABLE $S.b$tr PARTITION OF $S.t FOR VALUES FROM ($((tr * 1000))) TO ($((tr * 1000 + 1000))) PARTITION BY RANGE (col_idx)"
        done
        ;;
    esac
    for w in 0 1; do
        : >"$DIR/w$w.sql"
        [[ "$v" == async ]] && echo "SET synchronous_commit = off;" >"$DIR/w$w.sql"
        i=0
        for tr in 0 1 2 3; do
            for tc in 0 1 2 3; do
                if ((i % 2 == w)); then
                    local f="$DIR/t_${tr}_$tc.copy" l="$S.l_${tr}_$tc" c0=$((tc * 1000)) r0=$((tr * 1000))
                    local attach="ALTER TABLE $S.b$tr ATTACH PARTITION $l FOR VALUES FROM ($c0) TO ($((c0 + 1000)))"
                    local check="ALTER TABLE $l ADD CHECK (row_idx >= $r0 AND row_idx < $((r0 + 1000)) AND col_idx >= $c0 AND col_idx < $((c0 + 1000)));"
                    case "$v" in
                    plain | async) echo "BEGIN; COPY $S.t FROM '$f' (FORMAT binary); INSERT INTO $S.ledger VALUES ('$tr$tc'); COMMIT;" ;;
                    leaf) echo "BEGIN; CREATE TABLE $l $COLS; COPY $l FROM '$f' (FORMAT binary, FREEZE); $attach; INSERT INTO $S.ledger VALUES ('$tr$tc'); COMMIT;" ;;
                    leafcheck) echo "BEGIN; CREATE TABLE $l $COLS; $check COPY $l FROM '$f' (FORMAT binary, FREEZE); $attach; INSERT INTO $S.ledger VALUES ('$tr$tc'); COMMIT;" ;;
                    esac >>"$DIR/w$w.sql"
                fi
                i=$((i + 1))
            done
        done
    done
    "${P[@]}" -c CHECKPOINT
    sync
    local t0 t1
    t0=$(date +%s.%N)
    "${P[@]}" -f "$DIR/w0.sql" &
    "${P[@]}" -f "$DIR/w1.sql"
    wait
    t1=$(date +%s.%N)
    printf '%s %.2f %s\n' "$v" "$(echo "$t1 - $t0" | bc)" "$("${P[@]}" -Atc "SELECT count(*) FROM $S.t")"
}
for ((r = 1; r <= REPS; r++)); do
    for v in "${VARIANTS[@]}"; do run "$v"; done
done
