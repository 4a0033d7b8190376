#!/bin/sh
# tests/bench_torch.sh - training throughput of normbench against PyTorch
# (Debian's python3-torch) on the same workloads, one thread each, in
# interleaved rounds, with each OpenBLAS kernel set: the benchmark command
# of issue 18's table (results/BENCH.md).  Not a test: it times, so it
# never runs in `make check`.
#
#   tests/bench_torch.sh [--normbench BIN] [--torch SCRIPT] [--arch cnn,mlp]
#       [--norms none,batch,group,layer,instance] [--batches 2,8,32,64,128]
#       [--kernels default,Haswell] [--rounds 3] [--windows 5] [--steps 50]
#
# Each round runs `normbench bench` and `torch_throughput.py` once over
# every norm and batch size (in alternating order: normbench first in odd
# rounds, PyTorch first in even ones), for each kernel set ("default":
# OPENBLAS_CORETYPE unset, OpenBLAS's pick for this CPU; any other name is
# exported as OPENBLAS_CORETYPE, e.g. Haswell for the AVX2 kernels).
# PyTorch runs with the fair settings of ../shared/bench/README.md (one
# thread, one BLAS thread, glibc keeping its buffers).  The table on
# stdout: per kernel set, workload, norm and batch the median over the
# rounds of each tool's median window (img/s), and their ratio; the raw
# lines go to the work folder it names on stderr.
set -u

NB=build/normbench
TORCH=../shared/bench/torch_throughput.py
ARCHS=cnn,mlp
NORMS=none,batch,group,layer,instance
BATCHES=2,8,32,64,128
KERNELS=default,Haswell
ROUNDS=3
WINDOWS=5
STEPS=50

usage() {
    sed -n '7,10p' "$0" | sed 's/^# *//' >&2
    exit 2
}
while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case $1 in
    --normbench) NB=$2 ;;
    --torch) TORCH=$2 ;;
    --arch) ARCHS=$2 ;;
    --norms) NORMS=$2 ;;
    --batches) BATCHES=$2 ;;
    --kernels) KERNELS=$2 ;;
    --rounds) ROUNDS=$2 ;;
    --windows) WINDOWS=$2 ;;
    --steps) STEPS=$2 ;;
    *) usage ;;
    esac
    shift 2
done
[ -x "$NB" ] || { echo "bench_torch.sh: $NB: no normbench binary (--normbench BIN)" >&2; exit 2; }
[ -f "$TORCH" ] || { echo "bench_torch.sh: $TORCH: no torch_throughput.py (--torch SCRIPT)" >&2; exit 2; }
PY=/usr/bin/python3
"$PY" -c 'import torch' 2>/dev/null ||
    { echo "bench_torch.sh: $PY cannot import torch (apt-get install python3-torch)" >&2; exit 2; }
case $ROUNDS in '' | *[!0-9]*) usage ;; esac

W=$(mktemp -d "${TMPDIR:-/tmp}/bench_torch.XXXXXX") || exit 1
echo "bench_torch.sh: raw output in $W" >&2
RAW=$W/raw.txt # KERNELS TOOL ARCH NORM BATCH IMG_S
: >"$RAW"

# the instance norm is not defined on the mlp (workloads.md)
norms_of() { [ "$1" = mlp ] && echo "$NORMS" | tr ',' '\n' | grep -v '^instance$' | paste -sd, || echo "$NORMS"; }

run_nb() { # KERNELS ARCH
    "$NB" bench --arch "$2" --no-norm-bench --norms "$(norms_of "$2")" --batches "$BATCHES" \
        --windows "$WINDOWS" --steps "$STEPS" 2>&1 | tee -a "$W/normbench.txt" |
        awk -v k="$1" -v a="$2" -v kf="$W/kernels.$1" '
            /BLAS openblas \(kernels / { sub(/.*\(kernels /, ""); sub(/\).*/, ""); print > kf }
            $1 == a && $3 ~ /^[0-9]+$/ { print k, "normbench", a, $2, $3, $4 }' >>"$RAW"
}
run_torch() { # KERNELS ARCH
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=4294967296 \
        "$PY" "$TORCH" --threads 1 --blas-threads 1 --workload "$2" --norms "$(norms_of "$2")" \
        --batches "$BATCHES" --windows "$WINDOWS" --steps "$STEPS" 2>&1 | tee -a "$W/torch.txt" |
        awk -v k="$1" -v a="$2" '$1 !~ /^#/ && $2 ~ /^[0-9]+$/ { print k, "torch", a, $1, $2, $3 }' >>"$RAW"
}

for k in $(echo "$KERNELS" | tr ',' ' '); do
    if [ "$k" = default ]; then unset OPENBLAS_CORETYPE; else export OPENBLAS_CORETYPE=$k; fi
    export OPENBLAS_NUM_THREADS=1
    r=1
    while [ "$r" -le "$ROUNDS" ]; do
        for a in $(echo "$ARCHS" | tr ',' ' '); do
            if [ $((r % 2)) = 1 ]; then run_nb "$k" "$a"; run_torch "$k" "$a"
            else run_torch "$k" "$a"; run_nb "$k" "$a"; fi
        done
        echo "bench_torch.sh: kernels $k, round $r of $ROUNDS done" >&2
        r=$((r + 1))
    done
done
unset OPENBLAS_CORETYPE

# the kernel set normbench says it ran (its bench header), per request
kinds=
for k in $(echo "$KERNELS" | tr ',' ' '); do
    kinds="$kinds${kinds:+, }$k = $(cat "$W/kernels.$k" 2>/dev/null || echo '?')"
done
echo "normbench $("$NB" version | head -n 1 | sed 's/^normbench //') against $("$PY" -c 'import torch; print("PyTorch", torch.__version__)'),"
echo "one thread each, $ROUNDS interleaved rounds of $WINDOWS windows of $STEPS steps; OpenBLAS kernel sets: $kinds"
echo
echo "| OpenBLAS | workload | norm | batch | PyTorch img/s | normbench img/s | ratio |"
echo "|---|---|---|---:|---:|---:|---:|"
awk '
    function median(s,   n, v, i, j, t) {
        n = split(s, v, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    { key = $1 SUBSEP $3 SUBSEP $4 SUBSEP $5; vals[key, $2] = vals[key, $2] " " $6
      if (!(key in seen)) { seen[key] = 1; order[++n] = key } }
    END {
        for (i = 1; i <= n; i++) {
            split(order[i], f, SUBSEP)
            t = median(vals[order[i], "torch"]); b = median(vals[order[i], "normbench"])
            r = t > 0 ? sprintf("%.2f", b / t) : "-"
            printf "| %s | %s | %s | %s | %.0f | %.0f | %s |\n", f[1], f[2], f[3], f[4], t, b, r
        }
    }' "$RAW"
