# shellcheck shell=bash
# The criterion part of scripts/bench.sh (sourced; see there): the cost of
# one balancer pick per policy and instance count
# (`cargo bench -p shop-discovery --bench pick -- --quick`).

bench_criterion() {
    local rows
    log "criterion: cargo bench -p shop-discovery --bench pick -- --quick"
    CARGO_TARGET_DIR="$TARGET" cargo bench --quiet -p shop-discovery --bench pick -- --quick \
        >"$WORK/criterion.txt" 2>"$WORK/criterion.err" || { cat "$WORK/criterion.err" >&2; die "cargo bench failed"; }
    # A name is on the line of its `time:` or, when long, on the line before.
    rows=$(awk '
        /time:/ {
            if ($1 != "time:") name = $1
            match($0, /\[[^]]*\]/)
            split(substr($0, RSTART + 1, RLENGTH - 2), p, " ")
            printf "| `%s` | %s %s |\n", name, p[3], p[4]
            next
        }
        /^[a-z_0-9\/-]+$/ { name = $0 }' "$WORK/criterion.txt")
    {
        echo "### Criterion: balancer pick (\`cargo bench -p shop-discovery --bench pick -- --quick\`)"
        echo
        echo "| benchmark | median time |"
        echo "| --- | ---: |"
        echo "$rows"
    } >"$WORK/criterion.md"
}
