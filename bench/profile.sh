#!/usr/bin/env bash
# Instruction counts of hot paths under callgrind (valgrind), per call.
#
#   bash bench/profile.sh                      # every case of examples/hot.rs
#   bash bench/profile.sh a_retry_only e_tps   # some cases
#   N=50000 TOP=20 bash bench/profile.sh f_retry_only
#
# Builds examples/hot.rs in release with line tables (in target/profiling, so the
# benchmarks' build is untouched), collects only its `measure` loop, and prints the total
# instructions per call and the TOP functions by self cost (inlined code is attributed to
# its source file, so `machine.rs:…succeed` is the machine's share inside the caller).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-20000}
TOP=${TOP:-12}
OUT=${OUT:-target/profiling/callgrind}
CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_TARGET_DIR=target/profiling \
  cargo build -q --release -p redress-bench --example hot
HOT=target/profiling/release/examples/hot
mkdir -p "$OUT"
cases=("$@")
if [ ${#cases[@]} -eq 0 ]; then
  mapfile -t cases < <("$HOT" list | sed -n 's/^  //p')
fi
for c in "${cases[@]}"; do
  valgrind --tool=callgrind --collect-atstart=no --toggle-collect='hot::measure*' \
    --callgrind-out-file="$OUT/cg.$c" "$HOT" "$c" "$N" >/dev/null 2>"$OUT/cg.$c.log"
  callgrind_annotate --auto=no "$OUT/cg.$c" 2>/dev/null | awk -v n="$N" -v top="$TOP" -v c="$c" '
    /PROGRAM TOTALS/ { gsub(",", "", $1); printf "== %s: %.0f instructions/call\n", c, $1 / n; next }
    /file:function/ { body = 1; next }
    body && top > 0 && $0 ~ /^ *[0-9,]+ +\( *[0-9.]+%\)/ {
      v = $1; gsub(",", "", v)
      name = $0; sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "", name); sub(/ \[.*$/, "", name)
      gsub(/\/rustc\/[0-9a-f]+\/library\//, "", name); sub(/^.*\/work\/main\//, "", name)
      gsub(/\/root\/\.cargo\/registry\/src\/[^/]+\//, "", name)
      printf "  %8.1f  %s\n", v / n, name; top--
    }'
done
