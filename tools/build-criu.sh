#!/usr/bin/env bash
# A CRIU that works on this kernel, for stateful snapshots and live moves.
#
# Debian 12's CRIU 3.17 fails `criu check` on recent kernels ("vdso:
# Unexpected rt vDSO area bounds"); Debian 13's 4.1 works. Where the
# CRIU on root's PATH fails its check, this builds CRIU 4.1.1 from
# Debian 13's source tarball (checked by sha256) and installs it as
# /usr/local/sbin/criu, ahead of /usr/sbin on root's PATH, where
# liblxc's lxc-checkpoint finds it. Debian's package is left alone.
#
# Best effort and idempotent: a working CRIU already there means
# nothing to do; a failure leaves no /usr/local/sbin/criu behind and
# exits 1 (the engine then refuses stateful work with CRIU's reason and
# those tests skip). About two minutes on two cores.
set -euo pipefail

VERSION=4.1.1
TARBALL=criu_${VERSION}.orig.tar.xz
URL=http://deb.debian.org/debian/pool/main/c/criu/$TARBALL
SHA256=f80a66cb3726bb2116266d4759ce3bcbfab7abdb6b6d430bf20dd41911717afe
BUILD=/var/cache/nova-lxd/criu-$VERSION
TARGET=/usr/local/sbin/criu
DEPS=(libprotobuf-dev libprotobuf-c-dev protobuf-c-compiler
      protobuf-compiler python3-protobuf libnl-3-dev libnet1-dev
      libbsd-dev libnftables-dev libaio-dev libcap-dev uuid-dev
      pkg-config gcc make)

say() { printf 'build-criu: %s\n' "$*"; }

criu_works() {
    local criu
    criu=$(PATH=/usr/local/sbin:$PATH command -v criu) || return 1
    "$criu" check >/dev/null 2>&1
}

fetch() {
    mkdir -p "$BUILD"
    if ! echo "$SHA256  $BUILD/$TARBALL" | sha256sum -c --status \
            2>/dev/null; then
        say "downloading $URL"
        /usr/bin/python3 -c 'import sys, urllib.request
urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' \
            "$URL" "$BUILD/$TARBALL.part"
        mv "$BUILD/$TARBALL.part" "$BUILD/$TARBALL"
        echo "$SHA256  $BUILD/$TARBALL" | sha256sum -c --status \
            || { say "sha256 mismatch for $TARBALL"; return 1; }
    fi
    rm -rf "$BUILD/criu-$VERSION"
    tar -C "$BUILD" -xf "$BUILD/$TARBALL"
}

install_deps() {
    local missing=() p
    for p in "${DEPS[@]}"; do
        [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" \
            = "ii " ] || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    say "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null
}

main() {
    [ "$(id -u)" -eq 0 ] || { say "run as root"; exit 1; }
    if criu_works; then
        say "criu check passes: nothing to build"
        return 0
    fi
    say "the CRIU on PATH fails 'criu check': building CRIU $VERSION"
    fetch
    install_deps
    local start=$SECONDS
    if ! make -C "$BUILD/criu-$VERSION" -j"$(nproc)" criu \
            >"$BUILD/build.log" 2>&1; then
        say "build failed (see $BUILD/build.log)"
        return 1
    fi
    install -m 0755 "$BUILD/criu-$VERSION/criu/criu" "$TARGET"
    if ! criu_works; then
        say "the built CRIU fails 'criu check' too: removed"
        rm -f "$TARGET"
        return 1
    fi
    say "CRIU $VERSION installed as $TARGET ($((SECONDS - start)) s)"
}

main "$@"
