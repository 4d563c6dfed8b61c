#!/usr/bin/env bash
# Checks the compose monitoring profile's files (deploy/monitoring/, issue #22):
#
#   promtool check config      prometheus.yml, and the rule files it names
#   ... every rule file of rules/ is named in prometheus.yml ...
#   promtool test rules        rules/*_test.yml: each alert firing and not firing
#   amtool check-config        alertmanager.yml
#   check.py dashboard         dashboards/*.json: parses, unique panel ids, a valid
#                              layout, every PromQL expression parses
#
# or, with --live URL, instead of those: against the Prometheus of a running
# stack (after some traffic; scripts/compose-e2e.sh passes http://127.0.0.1:9090):
#
#   check.py live              the rules are loaded, every dashboard query
#                              evaluates, every metric name the dashboard and
#                              the rules read exists
#
# promtool and amtool are Debian's (prometheus 2.42, prometheus-alertmanager
# 0.25, what the images run): taken from PATH when those versions are there,
# otherwise fetched once with `apt-get download` and unpacked into
# $FERROSHOP_MONITORING_TOOLS (default ~/.cache/ferroshop/monitoring-tools).
# Nothing is installed system-wide, so no Prometheus service starts on this
# machine (it would take the port the compose profile publishes).
#
# Usage: scripts/monitoring.sh [--live URL]
#   --live URL   only the checks against the running Prometheus at URL
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

MON=deploy/monitoring
TOOLS="${FERROSHOP_MONITORING_TOOLS:-${HOME:-/root}/.cache/ferroshop/monitoring-tools}"
PROMTOOL_VERSION=2.42
AMTOOL_VERSION=0.25

LIVE=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --live) shift; LIVE="${1:?--live needs the URL of Prometheus}" ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done

# tool NAME VERSION PACKAGE: the path of NAME at VERSION: on PATH, or from
# Debian's PACKAGE unpacked under $TOOLS.
tool() {
    local name=$1 version=$2 package=$3 found
    found=$(command -v "$name" 2>/dev/null || true)
    if [ -n "$found" ] && "$found" --version 2>&1 | grep -q "version $version\."; then
        printf '%s\n' "$found"
        return 0
    fi
    found="$TOOLS/root/usr/bin/$name"
    if [ ! -x "$found" ]; then
        command -v apt-get >/dev/null 2>&1 || die "$name $version is needed: install Debian's $package (or put $name $version on PATH)"
        log "fetching $name from Debian's $package into $TOOLS"
        fetch_debs "$TOOLS" "$package"
        local deb
        for deb in "$TOOLS/${package}"_*.deb; do dpkg-deb -x "$deb" "$TOOLS/root" && rm -f "$deb"; done
        [ -x "$found" ] || die "$package has no usr/bin/$name"
    fi
    "$found" --version 2>&1 | grep -q "version $version\." \
        || die "$found is not $name $version: remove $TOOLS to fetch it again"
    printf '%s\n' "$found"
}

# The rule files (not their tests), and the tests.
rule_files() { find "$MON/rules" -maxdepth 1 -name '*.yml' ! -name '*_test.yml' | sort; }
rule_tests() { find "$MON/rules" -maxdepth 1 -name '*_test.yml' | sort; }

check_config() {
    "$PROMTOOL" check config "$MON/prometheus.yml"
    local file missing=()
    # prometheus.yml names its rule files relative to itself.
    for file in $(rule_files); do
        grep -qE "^ *- *${file#"$MON/"} *$" "$MON/prometheus.yml" || missing+=("$file")
    done
    [ "${#missing[@]}" -eq 0 ] || die "not named under rule_files in $MON/prometheus.yml: ${missing[*]}"
    "$AMTOOL" check-config "$MON/alertmanager.yml"
}

# rule_count: how many rules the rule files hold, as promtool counts them.
rule_count() {
    # shellcheck disable=SC2046 # one argument per file
    "$PROMTOOL" check rules $(rule_files) | sed -n 's/.*SUCCESS: \([0-9]*\) rules found.*/\1/p' |
        awk '{ sum += $1 } END { print sum + 0 }'
}

test_rules() {
    # shellcheck disable=SC2046 # one argument per file
    "$PROMTOOL" check rules $(rule_files)
    # shellcheck disable=SC2046
    "$PROMTOOL" test rules $(rule_tests)
}

check_dashboards() {
    local file
    for file in "$MON"/dashboards/*.json; do
        python3 "$MON/check.py" dashboard "$file" --promtool "$PROMTOOL"
    done
}

check_live() {
    local file count
    count=$(rule_count)
    for file in "$MON"/dashboards/*.json; do
        python3 "$MON/check.py" live "$LIVE" --dashboard "$file" --rules "$count"
    done
}

main() {
    command -v python3 >/dev/null 2>&1 || apt_install python3
    PROMTOOL=$(tool promtool "$PROMTOOL_VERSION" prometheus)
    if [ -n "$LIVE" ]; then
        phase "rules loaded, dashboard and rule metrics exist on $LIVE" check_live
        return 0
    fi
    AMTOOL=$(tool amtool "$AMTOOL_VERSION" prometheus-alertmanager)
    phase "promtool check config, amtool check-config" check_config
    phase "promtool test rules ($(rule_tests | xargs -n 1 basename | paste -sd ' ' -))" test_rules
    phase "dashboards parse, lay out and query valid PromQL" check_dashboards
}

main "$@"
