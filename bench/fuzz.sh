#!/usr/bin/env bash
# Runs every property (fuzz) target for a time budget and prints
# target × cases × failures.
#
#   bench/fuzz.sh [SECONDS_PER_TARGET]   (default 30)
#
# Each target is a proptest test; it is run in rounds of ROUND cases (a fresh random
# seed each round) until its budget is spent. A failing round prints proptest's
# minimal failing input and is counted; turn every one into a regression test named
# after the hole it shows. CI runs the same tests once at their small default case
# counts (`cargo test`); this script is the long run.
set -euo pipefail

BUDGET=${1:-30}
ROUND=${ROUND:-2000}
cd "$(dirname "$0")/.."

# crate | cargo test selector | test name (exact) | cases per round when the
# target fixes its own count (0: PROPTEST_CASES decides)
TARGETS=(
  "ferry-core|--test core|fuzz::fuzz_parse_mutated_fixtures|0"
  "ferry-core|--test core|fuzz::fuzz_parse_arbitrary_text|0"
  "ferry-core|--test core|fuzz::fuzz_argo_validate_mutated|0"
  "ferry-core|--test core|fuzz::fuzz_ignore_differences_expressions|0"
  "ferry-core|--test core|fuzz::fuzz_name_validators|0"
  "ferry-core|--test core|fuzz::fuzz_schema_and_admit|0"
  "ferry-runtime|--lib|proxy::h1::fuzz::fuzz_request_head|0"
  "ferry-runtime|--lib|proxy::h1::fuzz::fuzz_response_head|0"
  "ferry-runtime|--lib|proxy::h1::fuzz::fuzz_chunked_well_formed|0"
  "ferry-runtime|--lib|proxy::h1::fuzz::fuzz_chunked_split_invariant|0"
  "ferry-server|--test fuzz|fuzz_webhook_payload|0"
  "ferry-server|--test fuzz|fuzz_webhook_signature|0"
  "ferry-server|--test fuzz|fuzz_repo_key_and_revision|0"
  "ferry-server|--test fuzz|fuzz_repo_key_spellings_agree|0"
  "ferry-oci|--test fuzz|fuzz_image_json|0"
  "ferry-oci|--test fuzz|fuzz_reference_and_digest|0"
  "ferry-oci|--test fuzz|fuzz_layer_stays_inside_the_root|0"
  "ferry-oci|--test fuzz|fuzz_layer_arbitrary_bytes|0"
  "ferry-build|--test frontend|property::parse_plan_and_expand_never_panic|512"
)

# Build every test binary once, and remember where each is.
declare -A BIN
for t in "${TARGETS[@]}"; do
  IFS='|' read -r crate sel _ _ <<<"$t"
  key="$crate $sel"
  [[ -n ${BIN[$key]:-} ]] && continue
  # shellcheck disable=SC2086
  exe=$(cargo test -q -p "$crate" $sel --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])' | tail -1)
  [[ -x $exe ]] || { echo "no test binary for $key" >&2; exit 2; }
  BIN[$key]=$exe
done

log=$(mktemp)
trap 'rm -f "$log"' EXIT
printf '%-58s %10s %9s %8s\n' target cases failures seconds
total_fail=0
for t in "${TARGETS[@]}"; do
  IFS='|' read -r crate sel name fixed <<<"$t"
  exe=${BIN["$crate $sel"]}
  per_round=$ROUND
  [[ $fixed != 0 ]] && per_round=$fixed
  cases=0 fails=0 start=$SECONDS
  while ((SECONDS - start < BUDGET)); do
    if (cd "crates/$crate" && PROPTEST_CASES=$per_round "$exe" --exact "$name" --test-threads 1 \
          >"$log" 2>&1); then
      cases=$((cases + per_round))
    else
      fails=$((fails + 1))
      echo "--- $crate $name failed:" >&2
      grep -E 'minimal failing input|panicked|assert' "$log" | head -5 >&2 || true
      # A failing round ran some cases before it stopped; count none of them.
    fi
  done
  total_fail=$((total_fail + fails))
  printf '%-58s %10d %9d %8d\n' "$crate $name" "$cases" "$fails" "$((SECONDS - start))"
done
exit $((total_fail > 0))
