#!/usr/bin/env bash
# pk_order.sh — issue 17's "load in primary-key order" lever, measured in the server alone:
# does the primary key build get faster when the heap is in (row_idx, col_idx) order rather
# than in rasterstage's window order, and is loading into a table that already has its key
# any better than COPY then ADD PRIMARY KEY?
#
#   source scripts/services.sh; scripts/bench/pk_order.sh [PAIRS]      (default 5 pairs)
#
# Two tables of 2048 x 8192 cells (16.8 M rows, the default table shape): `win` in window order
# (1024 x 1024 windows, row-major inside a window, windows row-major: what `load` produces for
# a 2 x 8 tile dataset) and `srt` in key order (full-width rows). Each pair times, in
# alternating order, `ALTER TABLE ... ADD PRIMARY KEY (row_idx, col_idx)` on both (with
# maintenance_work_mem 512MB, as `load` sets it; key dropped and CHECKPOINT before each), then
# a COPY of the sorted rows (binary file written once) into a table that has its key already
# against COPY into a bare table followed by ADD PRIMARY KEY. Prints every timing and the
# median ratio of the pairs with its range. Uses and drops schema bench_pk_order.
set -euo pipefail
PAIRS="${1:-5}"
PSQL=(psql -w -X -q -v ON_ERROR_STOP=1 "${DATABASE_URL:?source scripts/services.sh first}")
S=bench_pk_order
DIR="$(mktemp -d)"
chmod 777 "$DIR"  # the server writes and reads the COPY file
trap '"${PSQL[@]}" -c "DROP SCHEMA IF EXISTS $S CASCADE" >/dev/null 2>&1; rm -rf "$DIR"' EXIT
SHAPE="(row_idx int4 NOT NULL, col_idx int4 NOT NULL, x float8 NOT NULL, y float8 NOT NULL, value float4 NOT NULL)"
"${PSQL[@]}" <<SQL
DROP SCHEMA IF EXISTS $S CASCADE; CREATE SCHEMA $S;
CREATE TABLE $S.win $SHAPE WITH (autovacuum_enabled = false);
CREATE TABLE $S.srt $SHAPE WITH (autovacuum_enabled = false);
INSERT INTO $S.win SELECT tr * 1024 + r, tc * 1024 + c, (tc * 1024 + c) * 0.01, (tr * 1024 + r) * 0.01, (r * 7 + c) % 1000
  FROM generate_series(0, 1) tr, generate_series(0, 7) tc, generate_series(0, 1023) r, generate_series(0, 1023) c;
INSERT INTO $S.srt SELECT r, c, c * 0.01, r * 0.01, (r * 7 + c) % 1000 FROM generate_series(0, 2047) r, generate_series(0, 8191) c;
VACUUM (FREEZE, ANALYZE) $S.win; VACUUM (FREEZE, ANALYZE) $S.srt;
COPY $S.srt TO '$DIR/srt.copy' (FORMAT binary);
SQL
# timed SQL: prints the seconds psql's \timing reports for the last statement
timed() { "${PSQL[@]}" -c "CHECKPOINT" -c '\timing on' -c "SET maintenance_work_mem = '512MB'" -c "$1" |
    sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1 | awk '{printf "%.2f", $1 / 1000}'; }
key() { local t; t="$(timed "ALTER TABLE $S.$1 ADD PRIMARY KEY (row_idx, col_idx)")"; "${PSQL[@]}" -c "ALTER TABLE $S.$1 DROP CONSTRAINT $1_pkey"; echo "$t"; }
with_key() {
    "${PSQL[@]}" -c "DROP TABLE IF EXISTS $S.k; CREATE TABLE $S.k $SHAPE WITH (autovacuum_enabled = false); ALTER TABLE $S.k ADD PRIMARY KEY (row_idx, col_idx)"
    timed "COPY $S.k FROM '$DIR/srt.copy' (FORMAT binary)"
}
then_key() {
    "${PSQL[@]}" -c "DROP TABLE IF EXISTS $S.n; CREATE TABLE $S.n $SHAPE WITH (autovacuum_enabled = false)"
    local a b
    a="$(timed "COPY $S.n FROM '$DIR/srt.copy' (FORMAT binary)")"
    b="$(timed "ALTER TABLE $S.n ADD PRIMARY KEY (row_idx, col_idx)")"
    awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a + b}'
}
echo "pair,key_window_order_s,key_key_order_s,copy_into_keyed_table_s,copy_then_key_s"
for ((p = 1; p <= PAIRS; p++)); do
    if ((p % 2)); then w="$(key win)"; s="$(key srt)"; k="$(with_key)"; n="$(then_key)"
    else s="$(key srt)"; w="$(key win)"; n="$(then_key)"; k="$(with_key)"; fi
    echo "$p,$w,$s,$k,$n"
done | tee "$DIR/pairs.csv"
python3 - "$DIR/pairs.csv" <<'PY'
import csv, statistics, sys
rows = list(csv.reader(open(sys.argv[1])))
col = lambda i: [float(r[i]) for r in rows]
def show(name, a, b):
    r = [x / y for x, y in zip(a, b)]
    print(f"{name}: median {statistics.median(a):.2f} s vs {statistics.median(b):.2f} s; "
          f"ratio of pairs median {statistics.median(r):.2f}x ({min(r):.2f}x-{max(r):.2f}x)")
show("primary key build, window order / key order", col(1), col(2))
show("COPY into a keyed table / COPY then ADD PRIMARY KEY (key order)", col(3), col(4))
PY
