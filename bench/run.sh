#!/usr/bin/env bash
# lambent's benchmark harness: throughput and latency of lambent against `wasmtime serve` (the
# same component, one fresh instance per request) and a native hyper server (the ceiling), measured
# in the same run with alternating rounds; then the cold start of freshly deployed functions.
#
# See bench/README.md. Prints a markdown report on stdout and writes it to bench/results/latest.md;
# progress goes to stderr.
#
# Settings (environment):
#   TARGETS        which servers to measure, any of "lambent wasmtime hyper" (default: all three)
#   DURATION       oha duration of one measurement (default 10s)
#   WARMUP         oha duration of the warm-up run before each measurement (default 2s)
#   ROUNDS         measurement rounds, targets alternating within each (default 3)
#   CONNECTIONS    concurrent keep-alive connections (default 32)
#   COLD_N         functions deployed for the cold-start section, 0 to skip (default 20)
#   COLD_UNIQUE    1: each cold-start copy gets a distinct custom section, so its code hash is new
#                  and nothing compiled for an earlier copy can be reused (default 1); 0: identical
#   COMPONENT      the wasi:http component (default examples/hello-c/hello.wasm)
#   READY_TIMEOUT  seconds to wait for a server to answer (default 120)
#   SKIP_BUILD     1: do not run cargo build (use the binaries already in target/release)
#   OHA, WASMTIME  the load generator and the peer (default: from PATH, then ~/.cargo/bin)
#   LAMBENT, HYPER_HELLO  the binaries under test (default: target/release/...)
#   KEEP_WORK      1: keep the scratch directory (oha JSON, server logs) and print its path
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

TARGETS=${TARGETS:-"lambent wasmtime hyper"}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-32}
COLD_N=${COLD_N:-20}
COLD_UNIQUE=${COLD_UNIQUE:-1}
COMPONENT=${COMPONENT:-examples/hello-c/hello.wasm}
READY_TIMEOUT=${READY_TIMEOUT:-120}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_WORK=${KEEP_WORK:-0}
PYTHON=${PYTHON:-python3}
EXPECTED_BODY="Hello from lambent!"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# A tool from PATH, else from ~/.cargo/bin.
find_tool() {
    if command -v "$1" >/dev/null 2>&1; then command -v "$1"
    elif [[ -x "$HOME/.cargo/bin/$1" ]]; then echo "$HOME/.cargo/bin/$1"
    else return 1
    fi
}

read -ra TARGET_LIST <<<"$TARGETS"
has_target() { [[ " ${TARGET_LIST[*]} " == *" $1 "* ]]; }

for t in "${TARGET_LIST[@]}"; do
    case $t in lambent | wasmtime | hyper) ;; *) die "unknown target '$t' (known: lambent wasmtime hyper)" ;; esac
done
((${#TARGET_LIST[@]} > 0)) || die "TARGETS is empty"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
[[ "$COLD_N" =~ ^[0-9]+$ ]] || die "COLD_N must be a non-negative integer"
[[ -f "$COMPONENT" ]] || die "no component at $COMPONENT (build it with examples/build.sh)"

OHA=${OHA:-$(find_tool oha)} || die "oha not found: cargo install --locked oha"
if has_target wasmtime; then
    WASMTIME=${WASMTIME:-$(find_tool wasmtime)} || die "wasmtime not found: cargo install --locked wasmtime-cli@48.0.8"
fi
command -v curl >/dev/null || die "curl not found"
command -v "$PYTHON" >/dev/null || die "$PYTHON not found"

# --- scratch space and cleanup --------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lambent-bench.XXXXXX")
PIDS=()
cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ "$KEEP_WORK" == 1 ]]; then
        log "scratch directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build ----------------------------------------------------------------------------------

if [[ "$SKIP_BUILD" != 1 ]]; then
    packages=(-p hyper-hello)
    has_target lambent && packages=(-p lambent "${packages[@]}")
    log "cargo build --release ${packages[*]}"
    cargo build --release "${packages[@]}" >&2
fi
LAMBENT=${LAMBENT:-$ROOT/target/release/lambent}
HYPER_HELLO=${HYPER_HELLO:-$ROOT/target/release/hyper-hello}
if has_target lambent; then
    [[ -x "$LAMBENT" ]] || die "no $LAMBENT"
fi
if has_target hyper; then
    [[ -x "$HYPER_HELLO" ]] || die "no $HYPER_HELLO"
fi

# --- servers --------------------------------------------------------------------------------

# Three distinct free loopback ports: all bound at once so they differ, then released.
read -r PORT_LAMBENT PORT_WASMTIME PORT_HYPER < <("$PYTHON" -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
')

# start NAME CMD...: run CMD in the background with its output in $WORK/NAME.log.
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    PIDS+=("$!")
    LAST_PID=$!
}

# wait_ready NAME PID URL: poll URL until it answers 2xx, the process dies, or READY_TIMEOUT passes.
wait_ready() {
    local name=$1 pid=$2 url=$3
    local deadline=$((SECONDS + READY_TIMEOUT))
    until curl -fsS -o /dev/null --max-time 5 "$url" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$WORK/$name.log" >&2 || true
            die "$name exited before answering $url"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$WORK/$name.log" >&2 || true
            die "$name did not answer $url within ${READY_TIMEOUT}s"
        fi
        sleep 0.1
    done
}

# check_body NAME URL: the target must serve the same hello-world as the others.
check_body() {
    local body
    body=$(curl -fsS --max-time 10 "$2") || die "$1: GET $2 failed"
    [[ "$body" == "$EXPECTED_BODY" ]] || die "$1: GET $2 answered '$body', expected '$EXPECTED_BODY'"
}

declare -A URL LABEL
LABEL[lambent]="lambent"
# lambent needs a key on every call but /healthz; the server and the CLI take this one from the
# environment, and the functions get public URLs (--public), as wasmtime serve's are.
export LAMBENT_ACCESS_KEY_ID=LKBENCHADMIN00000001
export LAMBENT_SECRET_ACCESS_KEY=bench-secret-0123456789abcdefghijklmnopq
LABEL[wasmtime]="wasmtime serve"
LABEL[hyper]="hyper-hello (native)"

if has_target lambent; then
    data_dir=$WORK/lambent-data
    mkdir -p "$data_dir"
    base=http://127.0.0.1:$PORT_LAMBENT
    log "starting lambent serve on $base"
    start lambent "$LAMBENT" serve --listen "127.0.0.1:$PORT_LAMBENT" --data-dir "$data_dir"
    LAMBENT_PID=$LAST_PID
    wait_ready lambent "$LAMBENT_PID" "$base/healthz"
    log "deploying hello ($COMPONENT)"
    "$LAMBENT" --endpoint "$base" deploy hello "$COMPONENT" --public >"$WORK/deploy-hello.log" 2>&1 ||
        { cat "$WORK/deploy-hello.log" >&2; die "lambent deploy hello failed"; }
    URL[lambent]=$base/fn/hello/
    wait_ready lambent "$LAMBENT_PID" "${URL[lambent]}"
fi

if has_target wasmtime; then
    # -Scli links all of WASI 0.2 as lambent does (without it wasmtime serve links only the
    # wasi:http/proxy world, and the hello component also imports wasi:cli/environment). Everything
    # else is wasmtime serve's default; see bench/README.md.
    log "starting wasmtime serve on 127.0.0.1:$PORT_WASMTIME"
    start wasmtime "$WASMTIME" serve -Scli --addr "127.0.0.1:$PORT_WASMTIME" "$COMPONENT"
    URL[wasmtime]=http://127.0.0.1:$PORT_WASMTIME/
    wait_ready wasmtime "$LAST_PID" "${URL[wasmtime]}"
fi

if has_target hyper; then
    log "starting hyper-hello on 127.0.0.1:$PORT_HYPER"
    start hyper "$HYPER_HELLO" "127.0.0.1:$PORT_HYPER"
    URL[hyper]=http://127.0.0.1:$PORT_HYPER/
    wait_ready hyper "$LAST_PID" "${URL[hyper]}"
fi

for t in "${TARGET_LIST[@]}"; do
    check_body "$t" "${URL[$t]}"
done

# --- throughput and latency -----------------------------------------------------------------

# oha_run URL OUT DURATION: one oha run, JSON result in OUT.
oha_run() {
    "$OHA" --no-tui -c "$CONNECTIONS" -z "$3" --output-format json "$1" >"$2" ||
        die "oha failed against $1"
}

for ((round = 1; round <= ROUNDS; round++)); do
    for t in "${TARGET_LIST[@]}"; do
        log "round $round/$ROUNDS: ${LABEL[$t]} (warm-up $WARMUP, then $DURATION)"
        oha_run "${URL[$t]}" "$WORK/warmup-$t-$round.json" "$WARMUP"
        oha_run "${URL[$t]}" "$WORK/oha-$t-$round.json" "$DURATION"
    done
done

# --- cold start -----------------------------------------------------------------------------

# header_value FILE NAME: the value of header NAME in a curl -D dump, empty when absent.
header_value() {
    { grep -i "^$2:" "$1" || true; } | head -n 1 | cut -d: -f2- | tr -d ' \r'
}

COLD_TSV=$WORK/cold.tsv
: >"$COLD_TSV"
if has_target lambent && [[ "$COLD_N" -gt 0 ]]; then
    log "cold start: deploying $COLD_N fresh copies of the component"
    for ((i = 1; i <= COLD_N; i++)); do
        name=hello-cold-$i
        code=$COMPONENT
        if [[ "$COLD_UNIQUE" == 1 ]]; then
            # Append a custom section (id 0) naming the copy: valid anywhere in a component, ignored
            # at run time, and it changes the code's hash.
            code=$WORK/$name.wasm
            "$PYTHON" - "$COMPONENT" "$code" "$name" <<'PY'
import sys

def leb128(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)

src, dst, tag = sys.argv[1], sys.argv[2], sys.argv[3].encode()
name = b"lambent-bench"
payload = leb128(len(name)) + name + tag
with open(src, "rb") as f:
    data = f.read()
with open(dst, "wb") as f:
    f.write(data + b"\x00" + leb128(len(payload)) + payload)
PY
        fi
        t0=$(date +%s%N)
        "$LAMBENT" --endpoint "http://127.0.0.1:$PORT_LAMBENT" deploy "$name" "$code" --public \
            >"$WORK/deploy-$name.log" 2>&1 ||
            { cat "$WORK/deploy-$name.log" >&2; die "lambent deploy $name failed"; }
        t1=$(date +%s%N)
        # Right after the deploy returns: one request, client wall time and the server's headers.
        out=$(curl -sS -o "$WORK/body-$name" -D "$WORK/headers-$name" --max-time 60 \
            -w '%{http_code} %{time_total}' "http://127.0.0.1:$PORT_LAMBENT/fn/$name/") ||
            die "curl of $name failed"
        read -r status total <<<"$out"
        init_ms=$(header_value "$WORK/headers-$name" x-lambent-init-ms)
        cold=$(header_value "$WORK/headers-$name" x-lambent-cold-start)
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$(((t1 - t0) / 1000))" \
            "$total" "${init_ms:--}" "${cold:--}" >>"$COLD_TSV"
    done
fi

# --- report ---------------------------------------------------------------------------------

REPORT=$WORK/report.md
{
    echo "# lambent benchmark"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
    echo "- machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
    echo "- load: \`$("$OHA" --version)\`, $CONNECTIONS keep-alive connections, $ROUNDS rounds of $DURATION per target (each after a $WARMUP warm-up), targets alternating"
    if has_target lambent; then
        echo "- lambent: \`$("$LAMBENT" --version)\`, \`lambent serve --listen ADDR --data-dir TMP\` (defaults otherwise), function \`hello\` deployed from \`$COMPONENT\`$([[ "$LAMBENT" == "$ROOT/target/release/lambent" ]] || echo ", binary \`$LAMBENT\`")"
    fi
    if has_target wasmtime; then
        echo "- wasmtime: \`$("$WASMTIME" --version)\`, \`wasmtime serve -Scli --addr ADDR $COMPONENT\` (defaults otherwise: pooling allocator when the host can reserve it, one instance per request)"
    fi
    echo "- component: \`$COMPONENT\` ($(wc -c <"$COMPONENT") bytes)"
    echo
} >"$REPORT"

"$PYTHON" - "$WORK" "$ROUNDS" "$COLD_UNIQUE" "${TARGET_LIST[@]}" >>"$REPORT" <<'PY'
import json, statistics, sys

work, rounds, cold_unique, targets = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
labels = {"lambent": "lambent", "wasmtime": "wasmtime serve", "hyper": "hyper-hello (native)"}

def load(t, r):
    with open(f"{work}/oha-{t}-{r}.json") as f:
        d = json.load(f)
    ok = sum(n for code, n in d.get("statusCodeDistribution", {}).items() if code.startswith("2"))
    bad = sum(n for code, n in d.get("statusCodeDistribution", {}).items() if not code.startswith("2"))
    # oha aborts the requests in flight when the duration ends; those are not errors.
    errors = sum(n for e, n in d.get("errorDistribution", {}).items() if e != "aborted due to deadline")
    pct = d.get("latencyPercentiles", {})
    return {
        "rps": ok / d["summary"]["total"],
        "p50": (pct.get("p50") or float("nan")) * 1000,
        "p99": (pct.get("p99") or float("nan")) * 1000,
        "failed": bad + errors,
    }

res = {}
for t in targets:
    runs = [load(t, r) for r in range(1, rounds + 1)]
    res[t] = {
        "rps": statistics.median(x["rps"] for x in runs),
        "p50": statistics.median(x["p50"] for x in runs),
        "p99": statistics.median(x["p99"] for x in runs),
        "failed": sum(x["failed"] for x in runs),
        "rounds": [x["rps"] for x in runs],
    }

def ratio(t, base):
    if base not in res or res[base]["rps"] == 0:
        return "n/a"
    return f"{res[t]['rps'] / res[base]['rps']:.2f}x"

print("## Throughput and latency (median of rounds)")
print()
if "lambent" in res and "wasmtime" in res:
    lw = res["lambent"]["rps"] / res["wasmtime"]["rps"]
    print(f"**lambent / wasmtime serve: {lw:.2f}x the requests per second** "
          f"(p50 {res['lambent']['p50']:.2f} ms vs {res['wasmtime']['p50']:.2f} ms, "
          f"p99 {res['lambent']['p99']:.2f} ms vs {res['wasmtime']['p99']:.2f} ms)")
    print()
print("| target | req/s | p50 ms | p99 ms | vs wasmtime serve | vs hyper ceiling | failed |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for t in targets:
    r = res[t]
    print(f"| {labels[t]} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} | "
          f"{ratio(t, 'wasmtime')} | {ratio(t, 'hyper')} | {r['failed']} |")
print()
print("Ratios are of req/s. `failed`: non-2xx responses and connection errors over all rounds.")
print()
print("Per-round req/s (rounds alternate the targets, so a drift shows in every column):")
print()
print("| round | " + " | ".join(labels[t] for t in targets) + " |")
print("| ---: | " + " | ".join("---:" for _ in targets) + " |")
for i in range(rounds):
    print(f"| {i + 1} | " + " | ".join(f"{res[t]['rounds'][i]:.0f}" for t in targets) + " |")
print()

rows = []
with open(f"{work}/cold.tsv") as f:
    for line in f:
        name, status, deploy_us, total_s, init_ms, cold = line.rstrip("\n").split("\t")
        rows.append((name, status, int(deploy_us) / 1000, float(total_s) * 1000, init_ms, cold))
if rows:
    def stats(xs):
        return f"{statistics.median(xs):.2f}", f"{max(xs):.2f}"
    inits = [float(r[4]) for r in rows if r[4] != "-"]
    statuses = {}
    for r in rows:
        statuses[r[1]] = statuses.get(r[1], 0) + 1
    colds = {}
    for r in rows:
        colds[r[5]] = colds.get(r[5], 0) + 1
    copies = ("each made unique by a custom section, so its code hash is new" if cold_unique == "1"
              else "byte-identical copies")
    print("## Cold start")
    print()
    print(f"{len(rows)} functions deployed one after another ({copies}); right after each deploy "
          "returned, one `curl` of its function URL.")
    print()
    print("| measure | median ms | max ms |")
    print("| --- | ---: | ---: |")
    med, mx = stats([r[2] for r in rows])
    print(f"| deploy (CLI wall time) | {med} | {mx} |")
    med, mx = stats([r[3] for r in rows])
    print(f"| first response (curl `time_total`) | {med} | {mx} |")
    if inits:
        med, mx = stats(inits)
        print(f"| `x-lambent-init-ms` (server-side instantiation) | {med} | {mx} |")
    else:
        print("| `x-lambent-init-ms` (server-side instantiation) | missing | missing |")
    print()
    print("HTTP status: " + ", ".join(f"{k} x{v}" for k, v in sorted(statuses.items())) +
          "; `x-lambent-cold-start`: " + ", ".join(f"{k} x{v}" for k, v in sorted(colds.items())) +
          ("" if len(inits) == len(rows) else f"; `x-lambent-init-ms` missing on {len(rows) - len(inits)}"))
    print()
PY

echo "Compare ratios within this report only; absolute numbers from different runs or machines are not comparable." >>"$REPORT"

mkdir -p "$ROOT/bench/results"
cp "$REPORT" "$ROOT/bench/results/latest.md"
cat "$REPORT"
