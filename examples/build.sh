#!/usr/bin/env bash
# Rebuild lambent's example WebAssembly guests from source.
#
#   examples/build.sh                 # everything: hello-c, cgi-c, hello-python
#   examples/build.sh --c-only        # hello-c and cgi-c
#   examples/build.sh --python-only   # hello-python (needs only cargo + componentize-py)
#
# Outputs (next to their sources):
#   examples/hello-c/hello.wasm       wasi:http component (committed)
#   examples/cgi-c/cgi.wasm           WASI preview1 command module (committed)
#   examples/hello-python/hello.wasm  wasi:http component, ~18 MB (not committed)
#
# The WIT files and the preview1 -> WASI 0.2 adapter come from the crates.io
# crates `wasmtime-wasi-http` and `wasi-preview1-component-adapter-provider`
# (both pinned to the wasmtime version lambent embeds), fetched by cargo.
# Generated bindings go to $BUILD_DIR (default examples/.build, git-ignored).
#
# Environment overrides: CC (default clang), WASI_TARGET (default wasm32-wasi),
# WASI_SYSROOT (passed as --sysroot when set, e.g. a wasi-sdk sysroot),
# BUILD_DIR, COMPONENTIZE_PY (default componentize-py), CARGO (default cargo).
set -euo pipefail

WASMTIME_VERSION=48.0.8
HTTP_WORLD=wasi:http/proxy@0.2.12
COMPONENTIZE_PY_VERSION=0.25.1

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD_DIR=${BUILD_DIR:-$HERE/.build}
CC=${CC:-clang}
WASI_TARGET=${WASI_TARGET:-wasm32-wasi}
CARGO=${CARGO:-cargo}
COMPONENTIZE_PY=${COMPONENTIZE_PY:-componentize-py}

build_c=1
build_python=1
for arg in "$@"; do
    case "$arg" in
        --python-only) build_c=0; build_python=1 ;;
        --c-only) build_c=1; build_python=0 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build.sh: error: %s\n' "$*" >&2; exit 1; }

# ------------------------------------------------------------------ tools check
missing=()
have() { command -v "$1" >/dev/null 2>&1; }

have "$CARGO" || missing+=("cargo (https://rustup.rs) -- used to fetch the WIT files and the adapter from crates.io")

if [[ $build_c == 1 ]]; then
    have "$CC" || missing+=("$CC: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32")
    have wasm-ld || missing+=("wasm-ld: apt-get install lld")
    have wasm-tools || missing+=("wasm-tools: cargo install --locked wasm-tools wit-bindgen-cli")
    have wit-bindgen || missing+=("wit-bindgen: cargo install --locked wasm-tools wit-bindgen-cli")
fi
if [[ $build_python == 1 ]]; then
    have "$COMPONENTIZE_PY" || missing+=("componentize-py: pip install componentize-py==$COMPONENTIZE_PY_VERSION")
fi

if ((${#missing[@]})); then
    echo "build.sh: missing tools:" >&2
    for m in "${missing[@]}"; do echo "  - $m" >&2; done
    exit 1
fi

mkdir -p "$BUILD_DIR"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# C toolchain sanity check: catches a missing wasi-libc sysroot or a missing
# compiler-rt for wasm32 (libclang_rt.builtins-wasm32.a) with a useful message.
cflags=(--target="$WASI_TARGET" -O2)
[[ -n ${WASI_SYSROOT:-} ]] && cflags+=(--sysroot="$WASI_SYSROOT")
if [[ $build_c == 1 ]]; then
    printf '#include <stdio.h>\nint main(void){puts("ok");return 0;}\n' > "$TMP/probe.c"
    if ! "$CC" "${cflags[@]}" -o "$TMP/probe.wasm" "$TMP/probe.c" 2>"$TMP/probe.log"; then
        cat "$TMP/probe.log" >&2
        die "$CC cannot build for $WASI_TARGET; install: apt-get install clang lld wasi-libc libclang-rt-dev-wasm32
       (or set WASI_SYSROOT to a wasi-sdk sysroot and CC to its clang)"
    fi
fi

# -------------------------------------------- WIT files and adapter (crates.io)
# A throwaway cargo project depending on both crates; `cargo metadata` downloads
# them into cargo's registry cache and tells us where their sources are.
log "fetching wasmtime-wasi-http and wasi-preview1-component-adapter-provider $WASMTIME_VERSION via cargo"
mkdir -p "$TMP/deps/src"
: > "$TMP/deps/src/lib.rs"
cat > "$TMP/deps/Cargo.toml" <<EOF
[package]
name = "lambent-examples-deps"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
wasi-preview1-component-adapter-provider = "=$WASMTIME_VERSION"
wasmtime-wasi-http = { version = "=$WASMTIME_VERSION", default-features = false }

[workspace]
EOF
"$CARGO" metadata --format-version 1 --manifest-path "$TMP/deps/Cargo.toml" > "$TMP/metadata.json" \
    || die "cargo metadata failed (is crates.io reachable?)"

# The directory of a package's Cargo.toml, from the metadata's manifest_path.
package_dir() {
    local name=$1 path
    path=$(grep -o '"manifest_path":"[^"]*"' "$TMP/metadata.json" \
        | sed 's/^"manifest_path":"//; s/"$//' \
        | grep "/$name-$WASMTIME_VERSION/Cargo.toml\$" | head -n1) || true
    [[ -n $path ]] || die "package $name $WASMTIME_VERSION not found in cargo metadata"
    dirname "$path"
}
WIT_DIR="$(package_dir wasmtime-wasi-http)/wit"
ADAPTER="$(package_dir wasi-preview1-component-adapter-provider)/artefacts/wasi_snapshot_preview1.proxy.wasm"
[[ -f $WIT_DIR/deps/http.wit ]] || die "no WIT files in $WIT_DIR"
grep -q "package ${HTTP_WORLD%%/*}@${HTTP_WORLD##*@};" "$WIT_DIR/deps/http.wit" \
    || die "$WIT_DIR does not define $HTTP_WORLD"
log "WIT:     $WIT_DIR"

size() { wc -c < "$1" | tr -d ' '; }

# Whether the component at $1 exports wasi:http/incoming-handler.
exports_incoming_handler() {
    local wit
    wit=$(wasm-tools component wit "$1") || return 1
    grep -q "export wasi:http/incoming-handler@" <<<"$wit"
}

# --------------------------------------------------------------------- hello-c
build_hello_c() {
    local src=$HERE/hello-c out=$BUILD_DIR/hello-c
    log "hello-c: generating bindings (wit-bindgen $(wit-bindgen --version | awk '{print $2}'))"
    rm -rf "$out"
    mkdir -p "$out/wit" "$out/gen"
    cp -R "$WIT_DIR/deps" "$out/wit/deps"
    cp "$src/wit/world.wit" "$out/wit/world.wit"
    wit-bindgen c "$out/wit" --world lambent:examples/hello --out-dir "$out/gen" >/dev/null

    log "hello-c: compiling"
    "$CC" "${cflags[@]}" -mexec-model=reactor -Wall -Wextra -Wno-unused-parameter \
        -I"$out/gen" -o "$out/core.wasm" \
        "$src/handler.c" "$out/gen/hello.c" "$out/gen/hello_component_type.o"
    wasm-tools component new "$out/core.wasm" \
        --adapt wasi_snapshot_preview1="$ADAPTER" -o "$out/component.wasm"
    # Drop debug info and other custom sections; keep the `name` section so
    # traps come with function names.
    wasm-tools strip "$out/component.wasm" -o "$src/hello.wasm"
    wasm-tools validate "$src/hello.wasm"
    exports_incoming_handler "$src/hello.wasm" \
        || die "hello-c/hello.wasm does not export wasi:http/incoming-handler"
    log "hello-c: examples/hello-c/hello.wasm ($(size "$src/hello.wasm") bytes)"
}

# ---------------------------------------------------------------------- cgi-c
build_cgi_c() {
    local src=$HERE/cgi-c out=$BUILD_DIR/cgi-c
    log "cgi-c: compiling"
    mkdir -p "$out"
    "$CC" "${cflags[@]}" -Wall -Wextra -o "$out/cgi.wasm" "$src/cgi.c"
    wasm-tools strip "$out/cgi.wasm" -o "$src/cgi.wasm"
    wasm-tools validate "$src/cgi.wasm"
    wasm-tools print "$src/cgi.wasm" > "$out/cgi.wat"
    grep -q '(export "_start"' "$out/cgi.wat" || die "cgi-c/cgi.wasm does not export _start"
    log "cgi-c: examples/cgi-c/cgi.wasm ($(size "$src/cgi.wasm") bytes)"
}

# --------------------------------------------------------------- hello-python
build_hello_python() {
    local src=$HERE/hello-python version
    version=$("$COMPONENTIZE_PY" --version 2>/dev/null | awk '{print $2}')
    if [[ $version != "$COMPONENTIZE_PY_VERSION" ]]; then
        echo "build.sh: warning: componentize-py $version found, the example is tested with" \
            "$COMPONENTIZE_PY_VERSION (pip install componentize-py==$COMPONENTIZE_PY_VERSION)" >&2
    fi
    log "hello-python: componentize-py $version (takes a while)"
    PYTHONDONTWRITEBYTECODE=1 "$COMPONENTIZE_PY" -d "$WIT_DIR" -w "$HTTP_WORLD" \
        componentize app -p "$src" -o "$src/hello.wasm"
    if have wasm-tools; then
        wasm-tools validate "$src/hello.wasm"
        exports_incoming_handler "$src/hello.wasm" \
            || die "hello-python/hello.wasm does not export wasi:http/incoming-handler"
    fi
    log "hello-python: examples/hello-python/hello.wasm ($(size "$src/hello.wasm") bytes)"
}

if [[ $build_c == 1 ]]; then
    build_hello_c
    build_cgi_c
fi
if [[ $build_python == 1 ]]; then
    build_hello_python
fi
log "done"
