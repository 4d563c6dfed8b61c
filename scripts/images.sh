#!/usr/bin/env bash
# Builds every image docker-compose.yml runs, with or without a registry.
#
#   1. Base images: the public images the Dockerfile (RUNTIME_IMAGE) and
#      docker-compose.yml (PostgreSQL, etcd) name. One already on the engine
#      is kept; otherwise it is pulled; where no registry answers (or with
#      --stand-ins) a stand-in is built from Debian's packages and tagged
#      with the public name, so the same compose file runs either way:
#        - the runtime base: glibc, libgcc, libstdc++, OpenSSL, CA
#          certificates and time zones, no shell, user 65532 (like distroless cc);
#        - etcd: that base plus Debian's etcd and etcdctl;
#        - PostgreSQL: Debian's PostgreSQL 15 with deploy/images/postgres-entrypoint.sh,
#          which honours the official image's environment and init scripts.
#      They are built by debootstrap (a minimal Debian in a folder, then
#      `docker import`), so the build itself needs no registry, only
#      Debian's package mirror. Each stand-in carries a label with the hash
#      of what made it; a changed recipe rebuilds it.
#   2. Service images: the Dockerfile's `prebuilt` target, one per service,
#      from binaries built on this machine: `cargo build --release` with the
#      etcd backend, or the ones in --bin-dir (scripts/test.sh passes the
#      binaries its tests ran). They are tagged localhost/ferroshop/<service>:<version>,
#      the names docker-compose.yml and k8s/ use.
#
#   3. With --monitoring, the monitoring profile's images (docker compose
#      --profile monitoring): Prometheus and Alertmanager from Debian's
#      packages (`apt-get download`, unpacked, never installed here) on the
#      runtime base, by deploy/monitoring/Dockerfile, tagged with the names
#      docker-compose.yml gives them (localhost/ferroshop/prometheus:2.42.0,
#      localhost/ferroshop/alertmanager:0.25.0). An image made from the same
#      packages and Dockerfile is kept.
#
# With a registry and BuildKit, `docker compose build` builds the same service
# images from source inside Docker instead (the Dockerfile's default target).
#
# Usage: scripts/images.sh [--bin-dir DIR] [--stand-ins] [--services-only|--bases-only] [--monitoring]
# Env:   DEBIAN_MIRROR  the Debian mirror for stand-ins (default: the one apt uses here)
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

SERVICES=(users catalog cart orders payments web gateway)
SUITE=bookworm
# What the runtime base holds (distroless cc's set of packages).
RUNTIME_PACKAGES=(base-files netbase tzdata ca-certificates libc6 libgcc-s1 libstdc++6 libssl3)
# Bumped by hand when the recipe below changes in a way the hash cannot see.
RECIPE_VERSION=1

# The monitoring images' packages: the servers, and what the web UI of
# Debian's Prometheus links its scripts and fonts from.
MONITORING_PACKAGES=(prometheus prometheus-alertmanager)
PROMETHEUS_UI_PACKAGES=(fonts-glyphicons-halflings libjs-bootstrap4 libjs-d3
    libjs-eonasdan-bootstrap-datetimepicker libjs-jquery libjs-jquery-hotkeys libjs-moment
    libjs-moment-timezone libjs-mustache libjs-popper.js libjs-rickshaw)

BIN_DIR=""
FORCE_STAND_INS=0
DO_BASES=1
DO_SERVICES=1
DO_MONITORING=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        --bin-dir) shift; BIN_DIR="${1:?--bin-dir needs a directory}" ;;
        --stand-ins) FORCE_STAND_INS=1 ;;
        --services-only) DO_BASES=0 ;;
        --bases-only) DO_SERVICES=0 ;;
        --monitoring) DO_MONITORING=1 ;;
        -h|--help) sed -n '2,39p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done

WORK=""
ROOTFS_MOUNTED=""
cleanup() {
    local status=$?
    set +e
    if [ -n "$ROOTFS_MOUNTED" ]; then umount "$ROOTFS_MOUNTED" 2>/dev/null; fi
    if [ -n "$WORK" ]; then rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The base images by role, read from the files that use them.
runtime_image() { sed -n 's/^ARG RUNTIME_IMAGE=//p' Dockerfile | head -n 1; }
compose_image() { sed -n "s/^ *image: *['\"]\{0,1\}\([^'\"]*$1[^'\"]*\)['\"]\{0,1\} *$/\1/p" docker-compose.yml | head -n 1; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }
image_label() { docker image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>/dev/null; }

# The hash of everything a stand-in is made of.
recipe_hash() {
    { printf '%s\n' "$RECIPE_VERSION" "$SUITE" "${RUNTIME_PACKAGES[*]}"
      sed -n '/^# ---- stand-ins/,/^# ---- end of stand-ins/p' "$0"
      cat deploy/images/postgres-entrypoint.sh; } | sha256sum | cut -c1-16
}

# The Debian mirror apt uses on this machine, or Debian's own.
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then printf '%s\n' "$DEBIAN_MIRROR"; return; fi
    local uri
    uri=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)\/\{0,1\}$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    [ -n "$uri" ] || uri=$(sed -n 's/^deb \(http[^ ]*\/debian\)\/\{0,1\} .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
    printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

# ---- stand-ins (everything until the end marker is part of the recipe hash)

# make_rootfs DIR: a minimal Debian with PostgreSQL 15 and etcd installed.
make_rootfs() {
    local root=$1 mirror
    mirror=$(debian_mirror)
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    log "debootstrap $SUITE from $mirror"
    debootstrap --variant=minbase "$SUITE" "$root" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s-security %s-security main\n' \
        "$mirror" "$SUITE" "$mirror" "$SUITE" "$mirror" "$SUITE" >"$root/etc/apt/sources.list"
    # No service starts inside the chroot, and the PostgreSQL packages create
    # no cluster: the entry point creates one in the container's volume.
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod 755 "$root/usr/sbin/policy-rc.d"
    mkdir -p "$root/etc/postgresql-common"
    printf 'create_main_cluster = false\n' >"$root/etc/postgresql-common/createcluster.conf"
    # The official image's postgres user is uid/gid 999; files mounted into
    # it (compose secrets, Kubernetes fsGroup) are made for that id.
    chroot "$root" groupadd --system --gid 999 postgres
    chroot "$root" useradd --system --uid 999 --gid postgres --home-dir /var/lib/postgresql --shell /bin/bash postgres
    mount -t proc proc "$root/proc"
    ROOTFS_MOUNTED="$root/proc"
    log "installing PostgreSQL 15 and etcd into it"
    { chroot "$root" apt-get update -qq \
        && chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            postgresql-15 etcd-server etcd-client "${RUNTIME_PACKAGES[@]}"; } >"$WORK/apt.log" 2>&1 \
        || { tail -n 30 "$WORK/apt.log" >&2; die "apt-get install in the stand-in root failed"; }
    umount "$root/proc"
    ROOTFS_MOUNTED=""
    rm -f "$root/usr/sbin/policy-rc.d"
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* \
        "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log
}

# make_runtime_root ROOTFS DIR: the files of RUNTIME_PACKAGES (merged /usr:
# /lib/... is stored as usr/lib/...), a passwd with root, nobody and
# nonroot (65532), an empty /tmp; no shell, no package manager.
make_runtime_root() {
    local rootfs=$1 dir=$2 pkg list path
    list="$WORK/runtime.list"
    : >"$list"
    for pkg in "${RUNTIME_PACKAGES[@]}"; do
        cat "$rootfs/var/lib/dpkg/info/$pkg.list" 2>/dev/null \
            || cat "$rootfs/var/lib/dpkg/info/$pkg:amd64.list" \
            || die "package $pkg is not in the stand-in root"
    done | sed -E 's#^/(bin|sbin|lib|lib64)(/|$)#/usr/\1\2#; s#^/##' | grep -v '^\.\{0,1\}$' | sort -u >"$list.all"
    # The certificate bundle is generated at install time, not shipped.
    printf '%s\n' etc/ssl/certs/ca-certificates.crt etc/nsswitch.conf >>"$list.all"
    # Documentation was removed from the root.
    while IFS= read -r path; do
        if [ -e "$rootfs/$path" ] || [ -L "$rootfs/$path" ]; then printf '%s\n' "$path"; fi
    done <"$list.all" >"$list"
    mkdir -p "$dir"
    tar -C "$rootfs" --no-recursion -cf - -T "$list" | tar -C "$dir" -xf -
    ln -s usr/bin "$dir/bin"; ln -s usr/sbin "$dir/sbin"; ln -s usr/lib "$dir/lib"; ln -s usr/lib64 "$dir/lib64"
    mkdir -p "$dir/tmp" "$dir/home/nonroot" "$dir/etc"
    chmod 1777 "$dir/tmp"
    chown 65532:65532 "$dir/home/nonroot"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$dir/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$dir/etc/group"
}

# import DIR NAME CHANGE...: imports DIR as image NAME with Dockerfile
# instructions CHANGE (ENV, USER, ENTRYPOINT, ...) and the recipe label.
import_root() {
    local dir=$1 name=$2 changes=() change
    shift 2
    for change in "$@" "LABEL org.ferroshop.stand-in=$RECIPE"; do changes+=(--change "$change"); done
    tar -C "$dir" --numeric-owner -cf - . | docker import "${changes[@]}" - "$name" >/dev/null
    log "built stand-in $name ($(docker image inspect --format '{{.Size}}' "$name" | awk '{printf "%.0f MB", $1/1e6}'))"
}

build_stand_ins() {
    local rootfs="$WORK/rootfs" runtime="$WORK/runtime" etcd="$WORK/etcd" path
    path=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    make_rootfs "$rootfs"
    make_runtime_root "$rootfs" "$runtime"
    import_root "$runtime" "$RUNTIME_IMAGE" "ENV $path" \
        "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" "USER 65532:65532" "WORKDIR /home/nonroot"

    # etcd as the upstream image runs it: as root, `etcd` on PATH, no entry point.
    cp -a "$runtime" "$etcd"
    cp -a "$rootfs/usr/bin/etcd" "$rootfs/usr/bin/etcdctl" "$etcd/usr/bin/"
    import_root "$etcd" "$ETCD_IMAGE" "ENV $path" "ENV ETCDCTL_API=3" \
        "EXPOSE 2379 2380" 'CMD ["/usr/bin/etcd"]'

    install -m 755 deploy/images/postgres-entrypoint.sh "$rootfs/usr/local/bin/docker-entrypoint.sh"
    mkdir -p "$rootfs/docker-entrypoint-initdb.d" "$rootfs/var/lib/postgresql/data"
    chown 999:999 "$rootfs/var/lib/postgresql" "$rootfs/var/lib/postgresql/data"
    import_root "$rootfs" "$POSTGRES_IMAGE" \
        "ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
        "ENV PGDATA=/var/lib/postgresql/data" "ENV LANG=C.UTF-8" \
        "VOLUME /var/lib/postgresql/data" "EXPOSE 5432" \
        'ENTRYPOINT ["docker-entrypoint.sh"]' 'CMD ["postgres"]'
    # `docker import` cannot set the stop signal: SIGINT is PostgreSQL's fast
    # shutdown (SIGTERM would wait for every client to disconnect).
    printf 'FROM %s\nSTOPSIGNAL SIGINT\n' "$POSTGRES_IMAGE" | docker build -q -t "$POSTGRES_IMAGE" - >/dev/null
}

# ---- end of stand-ins

# ensure_bases: every base image present, pulled, or built as a stand-in.
ensure_bases() {
    local image missing=()
    for image in "$RUNTIME_IMAGE" "$POSTGRES_IMAGE" "$ETCD_IMAGE"; do
        if image_exists "$image"; then
            local made
            made=$(image_label "$image" org.ferroshop.stand-in)
            # A stand-in from an older recipe is rebuilt; a pulled image is kept.
            if [ -z "$made" ] || [ "$made" = "$RECIPE" ]; then
                log "base image $image: present${made:+ (stand-in $made)}"
                continue
            fi
            log "base image $image: stand-in of an older recipe ($made)"
        elif [ "$FORCE_STAND_INS" -eq 0 ] && docker pull -q "$image" >/dev/null 2>"$WORK/pull.log"; then
            log "base image $image: pulled"
            continue
        elif [ "$FORCE_STAND_INS" -eq 0 ]; then
            log "base image $image: cannot be pulled ($(tail -n 1 "$WORK/pull.log"))"
        fi
        missing+=("$image")
    done
    if [ "${#missing[@]}" -eq 0 ]; then return 0; fi
    [ "$(id -u)" -eq 0 ] || die "building stand-in base images needs root (debootstrap, chroot): run as root"
    log "building stand-ins from Debian $SUITE for: ${missing[*]}"
    build_stand_ins
}

# build_services: one image per service from already-built binaries.
build_services() {
    local svc dir version
    version=$(workspace_version)
    if [ -z "$BIN_DIR" ]; then
        log "cargo build --release (etcd backend on)"
        cargo build --release --locked --workspace --features shop-discovery/etcd --bins
        BIN_DIR=target/release
    fi
    for svc in "${SERVICES[@]}"; do
        [ -x "$BIN_DIR/shop-$svc" ] || die "$BIN_DIR/shop-$svc not found: build the binaries first"
        # One small context per image: the binary, without debug sections
        # (a debug build's are most of its size).
        dir="$WORK/context-$svc"
        mkdir -p "$dir"
        objcopy --strip-debug "$BIN_DIR/shop-$svc" "$dir/shop-$svc"
        docker build --target prebuilt --build-arg "SERVICE=$svc" --build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE" \
            -t "localhost/ferroshop/$svc:$version" -f Dockerfile "$dir" >"$WORK/build-$svc.log" 2>&1 \
            || { cat "$WORK/build-$svc.log" >&2; die "docker build of $svc failed"; }
        log "built localhost/ferroshop/$svc:$version from $BIN_DIR/shop-$svc"
    done
}

# ---- monitoring images

# deb_version DIR PACKAGE: the upstream version of PACKAGE's .deb in DIR
# (2.42.0+ds-5+deb12u1 -> 2.42.0).
deb_version() {
    local deb
    for deb in "$1/$2"_*.deb; do
        dpkg-deb -f "$deb" Version | sed 's/^[0-9]*://; s/[+~-].*//'
    done
}

# copy_resolved FROM TO PATH...: each PATH (relative) from FROM to TO with
# every symbolic link on the way followed inside FROM (the packages link
# between themselves with relative links).
copy_resolved() {
    local from=$1 to=$2 path real
    shift 2
    for path in "$@"; do
        real=$(cd "$from" && readlink -f "$path") || die "$path: unresolvable in the packages"
        [ -f "$real" ] || die "$path: not in the packages (from $real)"
        install -D -m 644 "$real" "$to/$path"
    done
}

# monitoring_context DEBS CONTEXT: the build context of deploy/monitoring/Dockerfile
# from the packages in DEBS (unpacked into DEBS/root).
monitoring_context() {
    local root="$1/root" ctx=$2 web=usr/share/prometheus/web refs deb
    mkdir -p "$root"
    for deb in "$1"/*.deb; do dpkg-deb -x "$deb" "$root"; done
    mkdir -p "$ctx/prometheus/usr/bin" "$ctx/alertmanager/usr/bin" "$ctx/empty"
    cp -a "$root/usr/bin/prometheus" "$root/usr/bin/promtool" "$ctx/prometheus/usr/bin/"
    cp -a "$root/usr/bin/prometheus-alertmanager" "$root/usr/bin/amtool" "$ctx/alertmanager/usr/bin/"
    mkdir -p "$ctx/alertmanager/usr/share/prometheus"
    cp -a "$root/usr/share/prometheus/alertmanager" "$ctx/alertmanager/usr/share/prometheus/"
    # The classic UI: its own files, and of the script libraries it links
    # (moment-timezone alone is 200 MB) only the files its pages load.
    mkdir -p "$ctx/prometheus/$web"
    cp -a "$root/$web/templates" "$ctx/prometheus/$web/"
    (cd "$root" && find "$web/static" -type f -print0) | (cd "$root" && xargs -0 cp --parents -t "$ctx/prometheus")
    refs=$(grep -rhoE 'static/[^"?]+' "$root/$web/templates" | sort -u | sed "s#^#$web/#")
    # shellcheck disable=SC2086 # one path per word
    copy_resolved "$root" "$ctx/prometheus" $refs
    # The icon font its style sheet names.
    mkdir -p "$ctx/prometheus/$web/static/vendor/bootstrap4-glyphicons/fonts"
    cp -rL "$root/$web/static/vendor/bootstrap4-glyphicons/fonts/glyphicons" \
        "$ctx/prometheus/$web/static/vendor/bootstrap4-glyphicons/fonts/"
}

# build_monitoring: the prometheus and alertmanager images docker-compose.yml
# names, unless an image made from the same packages and Dockerfile exists.
build_monitoring() {
    local debs="$WORK/debs" ctx="$WORK/context-monitoring" target image want have recipe
    image_exists "$RUNTIME_IMAGE" || die "the runtime base $RUNTIME_IMAGE is missing: run without --services-only first"
    log "downloading ${MONITORING_PACKAGES[*]} from Debian"
    fetch_debs "$debs" "${MONITORING_PACKAGES[@]}" "${PROMETHEUS_UI_PACKAGES[@]}"
    recipe=$({ (cd "$debs" && printf '%s\n' ./*.deb); cat deploy/monitoring/Dockerfile
               sed -n '/^# ---- monitoring images/,/^# ---- end of monitoring images/p' "$0"; } | sha256sum | cut -c1-16)
    for target in prometheus alertmanager; do
        image=$(compose_image "$target:")
        [ -n "$image" ] || die "docker-compose.yml names no localhost/ferroshop/$target image"
        want=$(deb_version "$debs" "$([ "$target" = prometheus ] && echo prometheus || echo prometheus-alertmanager)")
        [ "${image##*:}" = "$want" ] \
            || die "docker-compose.yml runs $image, but Debian's package is $target $want: change the tag to $want"
        have=$(image_label "$image" org.ferroshop.monitoring || true)
        if [ "$have" = "$recipe" ]; then
            log "monitoring image $image: present"
            continue
        fi
        [ -d "$ctx" ] || monitoring_context "$debs" "$ctx"
        docker build --target "$target" --build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE" \
            --label "org.ferroshop.monitoring=$recipe" -t "$image" \
            -f deploy/monitoring/Dockerfile "$ctx" >"$WORK/build-$target.log" 2>&1 \
            || { cat "$WORK/build-$target.log" >&2; die "docker build of $image failed"; }
        log "built $image from Debian's $target $want"
    done
}

# ---- end of monitoring images

main() {
    command -v docker >/dev/null 2>&1 || die "docker not found"
    docker info >/dev/null 2>&1 || die "the Docker engine does not answer (is it running, may you use it?)"
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferroshop-images.XXXXXX")
    RUNTIME_IMAGE=$(runtime_image)
    POSTGRES_IMAGE=$(compose_image postgres)
    ETCD_IMAGE=$(compose_image etcd)
    if [ -z "$RUNTIME_IMAGE" ] || [ -z "$POSTGRES_IMAGE" ] || [ -z "$ETCD_IMAGE" ]; then
        die "base image names not found in Dockerfile / docker-compose.yml"
    fi
    RECIPE=$(recipe_hash)
    if [ "$DO_BASES" -eq 1 ]; then ensure_bases; fi
    if [ "$DO_SERVICES" -eq 1 ]; then build_services; fi
    if [ "$DO_MONITORING" -eq 1 ]; then build_monitoring; fi
}

main "$@"
