#!/bin/sh
# make bench / make bench-quick: rosa against PyTorch on the same machine (issue 6).
#
#   tools/bench.sh BUILD SHARED [quick]
#
# Runs every case of build/bench_train (random weights with the exact configs of
# bench/configs/*.json) and the same case in PyTorch (tools/bench_torch.py), each in a fresh
# process, and prints a markdown report to stdout (also written to BUILD/bench-report.md).
# Progress goes to stderr.  docs/bench.md describes the cases and the columns.
#
# Environment:
#   BENCH_THREADS=2        threads of both sides (OMP_NUM_THREADS, torch.set_num_threads)
#   BENCH_STEPS=N          timed steps per case after one warm-up (3 full, 1 quick)
#   BENCH_QWEN_STEPS=N     steps for qwen2.5-0.5b, qwen3-0.6b and gemma3-1b in the full suite
#                          (default 1: time budget)
#   BENCH_CONFIGS="a b"    names in bench/configs (full suite: smollm2-135m qwen2.5-0.5b
#                          llama-100m qwen3-0.6b gemma3-1b), or paths to HF config.json files
#   BENCH_BF16_CASES=lora  cases also run in BF16 (bench_train ... bf16, PyTorch autocast);
#                          empty: none
#   BENCH_RECOMPUTE_CASES=lora  training cases also run with --recompute (PyTorch:
#                          torch.utils.checkpoint per layer), in FP32; empty: none (quick: none)
#   BENCH_RECOMPUTE_CONFIGS=smollm2-135m  the configs those rows run for (time budget)
#   BENCH_CASE_TIMEOUT=S   seconds before one process is killed (default 900)
#   BENCH_KEEP_OPENBLAS=1  never set OPENBLAS_CORETYPE (see "OpenBLAS kernel" below)
#   PYTHON=/usr/bin/python3
set -e
BUILD=${1:?usage: tools/bench.sh BUILD SHARED [quick]}
SHARED=${2:?usage: tools/bench.sh BUILD SHARED [quick]}
MODE=${3:-full}
PYTHON=${PYTHON:-/usr/bin/python3}
THREADS=${BENCH_THREADS:-2}
TIMEOUT=${BENCH_CASE_TIMEOUT:-900}
CFGDIR=bench/configs
if [ "$MODE" = quick ]; then
    STEPS=${BENCH_STEPS:-1}
    CONFIGS=${BENCH_CONFIGS:-smollm2-135m}
    CASES="lora generate"
    TOKSECS=0.5
else
    STEPS=${BENCH_STEPS:-3}
    CONFIGS=${BENCH_CONFIGS:-smollm2-135m qwen2.5-0.5b llama-100m qwen3-0.6b gemma3-1b}
    CASES="lora roae rosa generate prefill"
    TOKSECS=2
fi
QWEN_STEPS=${BENCH_QWEN_STEPS:-1}
BF16_CASES=${BENCH_BF16_CASES-lora}
RECOMPUTE_CASES=${BENCH_RECOMPUTE_CASES-lora}
RECOMPUTE_CONFIGS=${BENCH_RECOMPUTE_CONFIGS-smollm2-135m}
[ "$MODE" = quick ] && RECOMPUTE_CASES=${BENCH_RECOMPUTE_CASES-}
[ "$MODE" = quick ] && QWEN_STEPS=$STEPS
[ -n "$BENCH_STEPS" ] && [ -z "$BENCH_QWEN_STEPS" ] && QWEN_STEPS=$STEPS

export OMP_NUM_THREADS=$THREADS
# rosa (cli/main.c, bench_train) shortens libgomp's spin to GOMP_SPINCOUNT=10000 unless the
# environment sets OMP_WAIT_POLICY or GOMP_SPINCOUNT; PyTorch runs under the same setting, so
# that both sides wait for busy cores the same way.
if [ -z "$OMP_WAIT_POLICY" ] && [ -z "$GOMP_SPINCOUNT" ]; then
    export GOMP_SPINCOUNT=10000
    OMP_NOTE="GOMP_SPINCOUNT=10000 on both sides (rosa's default, set by bench.sh for PyTorch too)"
else
    OMP_NOTE="OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset}, GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-unset} from the environment, both sides"
fi
T0=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' + local changes')"
LOG=$WORK/results.tsv
: >"$LOG"
note() { echo "bench: $*" >&2; }

# ---------------------------------------------------------------- OpenBLAS kernel
# OpenBLAS 0.3.21 (Debian 12) does not know some recent Xeons (family 6 model 207) and falls
# back to its generic Prescott kernels (SSE3, ~10-20 GFLOP/s), which would cripple PyTorch's
# FP32 matmuls (Debian's torch uses OpenBLAS for them).  When OPENBLAS_CORETYPE is unset and
# the autodetected kernel is that fallback, both sides run with the kernel matching the CPU
# flags; an OPENBLAS_CORETYPE set by the environment is always kept as it is.
blas_core() { # $1: env assignment or "", prints the Core OpenBLAS reports for PyTorch's process
    env $1 OPENBLAS_VERBOSE=2 "$PYTHON" -c 'import torch' 2>&1 | sed -n 's/^Core: //p' | tail -1
}
CORE_AUTO=""
CORE_NOTE="set by the environment"
if [ -n "${OPENBLAS_CORETYPE+x}" ]; then
    CORE_NOTE="OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE set by the environment (kept)"
else
    CORE_AUTO=$(blas_core "")
    CORE_NOTE="autodetected"
    if [ "$CORE_AUTO" = Prescott ] && [ -z "$BENCH_KEEP_OPENBLAS" ]; then
        FLAGS=$(grep -m1 '^flags' /proc/cpuinfo)
        PICK=""
        case "$FLAGS" in
        *avx512f*) PICK=SkylakeX ;; # its SGEMM is also Cooperlake's and SapphireRapids
        *avx2*) PICK=Haswell ;;
        esac
        if [ -n "$PICK" ]; then
            export OPENBLAS_CORETYPE=$PICK
            CORE_NOTE="autodetection fell back to Prescott (CPU unknown to this OpenBLAS); bench.sh set OPENBLAS_CORETYPE=$PICK for both sides of this run (BENCH_KEEP_OPENBLAS=1 keeps Prescott)"
        fi
    fi
fi
CORE_ROSA=$(OPENBLAS_VERBOSE=2 "$BUILD/bench_train" x gemm 2>"$WORK/gemm.err" >"$WORK/gemm.json" || true
    sed -n 's/^Core: //p' "$WORK/gemm.err" | tail -1)
CORE_TORCH=$(blas_core "")
GEMM=$(cat "$WORK/gemm.json")
note "GEMM ceiling: $GEMM"

# ---------------------------------------------------------------- cases
have_time=""
[ -x /usr/bin/time ] && have_time=1
run_case() { # config side dtype case cmd...
    r_cfg=$1 r_side=$2 r_dtype=$3 r_cas=$4
    shift 4
    note "$r_cfg $r_cas $r_side $r_dtype ..."
    s=$(date +%s.%N)
    r_st=ok
    if [ -n "$have_time" ]; then
        timeout "$TIMEOUT" /usr/bin/time -f '%U %S' -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || r_st=failed
    else
        timeout "$TIMEOUT" "$@" >"$WORK/out" 2>"$WORK/err" || r_st=failed
        echo "" >"$WORK/time"
    fi
    e=$(date +%s.%N)
    r_json=$(grep '^{' "$WORK/out" | tail -1)
    [ -z "$r_json" ] && r_st=failed
    if [ "$r_st" = failed ]; then
        tail -3 "$WORK/err" | sed 's/^/    /' >&2
        r_json='{}'
    fi
    r_cpu=$(tail -1 "$WORK/time" | awk 'NF == 2 {print $1 + $2}')
    r_wall=$(echo "$s $e" | awk '{printf "%.1f", $2 - $1}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r_cfg" "$r_side" "$r_dtype" "$r_cas" "$r_st" "$r_wall" "$r_cpu" "$r_json" >>"$LOG"
    note "  $r_st, $r_wall s"
}

for cfg in $CONFIGS; do
    json=$CFGDIR/$cfg.json
    case $cfg in */*) json=$cfg cfg=$(basename "$(dirname "$cfg")") ;; esac # a path to a config.json
    steps=$STEPS
    case $cfg in qwen2.5* | qwen3* | gemma3*) steps=$QWEN_STEPS ;; esac
    for cas in $CASES; do
        for dt in fp32 bf16 recompute; do
            rosa_args=$dt torch_args="--dtype $dt"
            case $dt in
            bf16) case " $BF16_CASES " in *" $cas "*) ;; *) continue ;; esac ;;
            recompute)
                case " $RECOMPUTE_CASES " in *" $cas "*) ;; *) continue ;; esac
                case " $RECOMPUTE_CONFIGS " in *" $cfg "*) ;; *) continue ;; esac
                rosa_args="fp32 recompute" torch_args="--dtype fp32 --recompute" ;;
            esac
            run_case "$cfg" rosa $dt "$cas" "$BUILD/bench_train" "$json" "$cas" "$steps" $rosa_args
            run_case "$cfg" torch $dt "$cas" "$PYTHON" tools/bench_torch.py "$json" "$cas" \
                --steps "$steps" --threads "$THREADS" $torch_args
        done
    done
    printf '%s\t%s\n' "$cfg" "$steps" >>"$WORK/steps.tsv"
done
run_case - torch any gemm "$PYTHON" tools/bench_torch.py x gemm --threads "$THREADS"
# The ceiling again at the end: the report uses the better of the two (a busy machine at the
# start would otherwise give shares of the ceiling above 100%).
GEMM_END=$("$BUILD/bench_train" x gemm 2>/dev/null | grep '^{' || echo '{}')
note "GEMM ceiling at the end: $GEMM_END"

# ---------------------------------------------------------------- tokenizer
TEXT=$SHARED/data/train/commonsense_mix_small.json
: >"$WORK/tok"
for t in "$SHARED/tokenizers/qwen2" "$SHARED/tokenizers/llama2" "$SHARED/models/stories260K"; do
    note "tokenizer $t ..."
    OMP_NUM_THREADS=1 "$BUILD/bench_tokenizer" "$t" "$TEXT" "$TOKSECS" 2>&1 | grep '^tokenizer' >>"$WORK/tok" ||
        echo "tokenizer $t: failed" >>"$WORK/tok"
done

# ---------------------------------------------------------------- report
T1=$(date +%s)
export BENCH_MODE=$MODE BENCH_MAIN_STEPS=$STEPS BENCH_WALL=$((T1 - T0)) BENCH_GEMM="$GEMM" BENCH_GEMM_END="$GEMM_END" BENCH_CORE_ROSA="$CORE_ROSA"
export BENCH_CORE_TORCH="$CORE_TORCH" BENCH_CORE_NOTE="$CORE_NOTE" BENCH_THREADS_USED=$THREADS
export BENCH_LOAD_START="$LOAD_START" BENCH_TEXT="$TEXT" BENCH_OMP_NOTE="$OMP_NOTE"
export BENCH_CPU="$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
export BENCH_CORES="$(lscpu | awk -F: '/^Core\(s\) per socket/ {c=$2} /^Socket\(s\)/ {s=$2} /^CPU\(s\)/ {n=$2}
    END {printf "%d cores, %d CPUs", c * s, n}')"
export BENCH_LOAD="$(cut -d' ' -f1-3 /proc/loadavg)"
export BENCH_REV="$REV"
mkdir -p "$BUILD"
"$PYTHON" - "$LOG" "$WORK/steps.tsv" "$WORK/tok" <<'EOF' | tee "$BUILD/bench-report.md"
import datetime, json, os, sys

E = os.environ
rows = []
for line in open(sys.argv[1]):
    cfg, side, dtype, case, st, wall, cpu, js = line.rstrip("\n").split("\t", 7)
    rows.append(dict(cfg=cfg, side=side, dtype=dtype, case=case, ok=st == "ok", wall=wall, cpu=cpu,
                     r=json.loads(js)))
steps = dict(l.split() for l in open(sys.argv[2]))
get = lambda cfg, side, dtype, case: next((x for x in rows if (x["cfg"], x["side"], x["dtype"], x["case"])
                                           == (cfg, side, dtype, case)), None)
gemm0, gemm1 = json.loads(E["BENCH_GEMM"] or "{}"), json.loads(E["BENCH_GEMM_END"] or "{}")
gemm = dict(gemm0)
for k in ("gflops", "gflops_bf16"):
    if max(gemm0.get(k) or 0, gemm1.get(k) or 0):
        gemm[k] = max(gemm0.get(k) or 0, gemm1.get(k) or 0)
ceil = gemm.get("gflops")
tg = (get("-", "torch", "any", "gemm") or {}).get("r", {})


def f(v, fmt="%.1f"):
    return "–" if v is None else fmt % v


def ratio(a, b):
    return "–" if not a or not b else "%.2f×" % (a / b)


def tps(x):
    return x["r"].get("tokens_per_second") if x and x["ok"] else None


def sec(x):
    if not x or not x["ok"]:
        return None
    s = x["r"].get("seconds_per_step")
    if s is None and x["case"] == "generate" and tps(x):
        s = 128 / tps(x)  # bench_train's generate: 128 new tokens in one rosa_generate
    return s


def rss(x):
    return x["r"].get("peak_rss_mib") if x and x["ok"] else None


def st(x, v):
    if v is not None:
        return v
    return "–" if x is None else "n/a" if x.get("na") else "failed" if not x["ok"] else "–"


P = print
P("# rosa benchmark (%s)" % ("make bench-quick" if E["BENCH_MODE"] == "quick" else "make bench"))
P()
P("- Date: %s; rosa %s" % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), E["BENCH_REV"]))
P("- Machine: %s, %s; %s threads on both sides; OpenMP: %s"
  % (E["BENCH_CPU"], E["BENCH_CORES"], E["BENCH_THREADS_USED"], E["BENCH_OMP_NOTE"]))
P("- Load average (1, 5, 15 min) at the start: %s, at the end: %s (other processes on the machine "
  "slow both sides, unevenly)" % (E["BENCH_LOAD_START"], E["BENCH_LOAD"]))
P("- rosa GEMM backend: %s; OpenBLAS kernel: rosa %s, PyTorch %s (%s)"
  % (gemm.get("backend", "?"), E["BENCH_CORE_ROSA"] or "?", E["BENCH_CORE_TORCH"] or "?", E["BENCH_CORE_NOTE"]))
P("- Measured GEMM ceiling (bench_train gemm, 1024×2048×2048, best of ~2 s, at the start and at the "
  "end of the run; the better is used; BF16: oneDNN's matmul with packed BF16 weights and BF16 input, "
  "FP32 output, as --dtype bf16 runs its products): FP32 **%s GFLOP/s** (%s, %s)%s"
  % (f(ceil), f(gemm0.get("gflops")), f(gemm1.get("gflops")),
     "" if not gemm.get("gflops_bf16") else ", BF16 **%s GFLOP/s** (%s, %s)"
     % (f(gemm["gflops_bf16"]), f(gemm0.get("gflops_bf16")), f(gemm1.get("gflops_bf16")))))
if tg:
    P("- PyTorch %s `F.linear` of the same shape: FP32 %s GFLOP/s, BF16 autocast %s GFLOP/s (context)"
      % (tg.get("torch"), f(tg.get("gflops_fp32")), f(tg.get("gflops_bf16"))))
P("- Weights are random, with the exact configs of the real models (bench/configs/); speed and "
  "memory do not depend on the values.")
P("- Training cases: one optimizer step of 4 × 256 tokens; medians of the timed steps after one "
  "warm-up step (steps per config below).")
P()
for cfg, n in steps.items():
    P("## %s (%s timed step%s after one warm-up%s)" % (cfg, n, "" if n == "1" else "s",
      "; fewer than the other configs, for the time budget" if n != E["BENCH_MAIN_STEPS"] else ""))
    P()
    P("| case | dtype | rosa tok/s | rosa s/step | rosa GFLOP/s | % of ceiling | rosa RSS MiB "
      "| PyTorch tok/s | PyTorch s/step | PyTorch RSS MiB | speed rosa / PyTorch | RSS rosa / PyTorch |")
    P("|---|---|" + "---:|" * 10)
    for case in ("lora", "roae", "rosa", "generate", "prefill"):
        for dt in ("fp32", "bf16", "recompute"):
            r, t = get(cfg, "rosa", dt, case), get(cfg, "torch", dt, case)
            if not (r or t):
                continue
            want = "bf16" if dt == "bf16" else "fp32"
            if r and r["ok"] and (r["r"].get("dtype", "fp32") != want  # a bench_train without that mode
                                  or (dt == "recompute") != bool(r["r"].get("recompute"))):
                r = dict(r, ok=False, na=True)
            g = r["r"].get("gflops") if r and r["ok"] else None
            c = gemm.get("gflops_bf16") if dt == "bf16" else ceil
            label = {"fp32": "fp32", "bf16": "bf16 (PyTorch: autocast)",
                     "recompute": "fp32, --recompute (PyTorch: checkpoint per layer)"}[dt]
            cells = [case, label,
                     st(r, f(tps(r))), st(r, f(sec(r), "%.3f")), st(r, f(g)),
                     "–" if g is None or not c else "%.0f%%" % (100 * g / c), st(r, f(rss(r), "%.0f")),
                     st(t, f(tps(t))), st(t, f(sec(t), "%.3f")), st(t, f(rss(t), "%.0f")),
                     ratio(tps(r), tps(t)), "–" if not rss(r) or not rss(t) else "%.2f" % (rss(r) / rss(t))]
            P("| " + " | ".join(cells) + " |")
    P()
P("GFLOP/s: FLOPs of the step by bench_train's count_flops (docs/bench.md) ÷ its median time (with "
  "--recompute the recomputed forward is not counted); % of ceiling: of the measured GEMM ceiling of "
  "the dtype in use. Generate: tokens/s of 128 new tokens after a 128-token prompt, prompt included "
  "in the time (s/step = one whole generation), median of the timed runs after a short warm-up on "
  "both sides. Speed ratios are tokens/s, > 1 means rosa is faster; RSS ratios < 1 mean rosa uses less.")
P()

# ---- where the time goes: bench_train's profile by op (rosa side, training cases)
OPS = [("projections", "frozen projections (GEMM)"), ("lm_head_gemm", "LM head (GEMM)"),
       ("attention", "attention"), ("adapter", "adapter branches"), ("softmax_loss", "LM head softmax + loss"),
       ("rmsnorm", "RMSNorm"), ("swiglu", "SwiGLU"), ("rope", "RoPE"), ("other", "embedding, residuals, copies"),
       ("optimizer", "clip + AdamW")]


def prof(x):
    return x["r"].get("profile") if x and x["ok"] else None


def gemm_part(x, c):
    """GFLOP/s and share of the ceiling c of the products with frozen weights (projections, LM head)."""
    p = prof(x)
    if not p:
        return None, None
    sec = p["projections"]["seconds"] + p["lm_head_gemm"]["seconds"]
    fl = p["projections"]["seconds"] * p["projections"]["gflops"] + p["lm_head_gemm"]["seconds"] * p["lm_head_gemm"]["gflops"]
    g = fl / sec if sec else None
    return g, (100 * g / c if g and c else None)


P("## Where the time goes (rosa, profile by op)")
P()
P("Seconds per step by kind of operation (mean of the timed steps; `PROF` counters of "
  "src/core/prof.h, read by bench_train), their share of the step, and the GFLOP/s of the counted "
  "products. \"GEMM part\" is the products with the frozen weights (projections and LM head), "
  "the GEMM-dominated part of the step, against the ceiling of the dtype in use.")
P()
for cfg in steps:
    cols = [(c, d) for c in ("lora", "rosa") for d in ("fp32", "bf16") if prof(get(cfg, "rosa", d, c))]
    if not cols:
        continue
    P("### %s" % cfg)
    P()
    P("| operation | " + " | ".join("%s %s: s/step | share | GFLOP/s" % cd for cd in cols) + " |")
    P("|---|" + "---:|---:|---:|" * len(cols))
    for key, label in OPS:
        cells = [label]
        for c, d in cols:
            x = get(cfg, "rosa", d, c)
            o = prof(x).get(key, {"seconds": 0, "gflops": 0})
            total = sum(v["seconds"] for v in prof(x).values())
            cells += ["%.3f" % o["seconds"], "%.0f%%" % (100 * o["seconds"] / total) if total else "–",
                      "%.0f" % o["gflops"] if o["gflops"] else "–"]
        P("| " + " | ".join(cells) + " |")
    cells = ["**GEMM part** (GFLOP/s, % of ceiling)"]
    for c, d in cols:
        g, pc = gemm_part(get(cfg, "rosa", d, c), gemm.get("gflops_bf16") if d == "bf16" else ceil)
        cells += ["", f(pc, "%.0f%%"), f(g, "%.0f")]
    P("| " + " | ".join(cells) + " |")
    P()

# ---- the targets of issue 6
P("## Targets (issue 6)")
P()
P("| config | target | measured | met |")
P("|---|---|---|---|")


def target(cfg, what, value, goal, better="higher", fmt="%.2f×"):
    if value is None:
        P("| %s | %s | – | not measured |" % (cfg, what))
        return
    ok = value >= goal if better == "higher" else value <= goal
    miss = "" if ok else (" (short by %.0f%%)" % (100 * (1 - value / goal)) if better == "higher"
                          else " (over by %.0f%%)" % (100 * (value / goal - 1)))
    P("| %s | %s | %s | %s%s |" % (cfg, what, fmt % value, "yes" if ok else "**no**", miss))


def rt(cfg, case, dt):
    r, t = get(cfg, "rosa", dt, case), get(cfg, "torch", dt, case)
    return tps(r) / tps(t) if tps(r) and tps(t) else None


for cfg in steps:
    target(cfg, "LoRA step FP32 ≥ 2× PyTorch FP32", rt(cfg, "lora", "fp32"), 2.0)
    target(cfg, "LoRA step BF16 ≥ 1.5× PyTorch BF16 autocast", rt(cfg, "lora", "bf16"), 1.5)
    for d in ("fp32", "bf16"):
        g, pc = gemm_part(get(cfg, "rosa", d, "lora"), gemm.get("gflops_bf16") if d == "bf16" else ceil)
        target(cfg, "LoRA %s: GEMM part ≥ 60%% of the ceiling" % d.upper(), pc, 60.0, fmt="%.0f%%")
    lo, ro = tps(get(cfg, "rosa", "fp32", "lora")), tps(get(cfg, "rosa", "fp32", "rosa"))
    target(cfg, "RoSA step faster than the LoRA step (tok/s ratio > 1)", ro / lo if lo and ro else None, 1.0)
    for case, dt in (("lora", "fp32"), ("lora", "bf16"), ("lora", "recompute"), ("roae", "fp32"), ("rosa", "fp32")):
        r, t = get(cfg, "rosa", dt, case), get(cfg, "torch", dt, case)
        if rss(r) and rss(t):
            target(cfg, "peak RSS ≤ 1/3 of PyTorch's (%s %s)" % (case, dt), rss(r) / rss(t), 1 / 3, "lower", "%.2f")
    target(cfg, "generation ≥ 2× PyTorch", rt(cfg, "generate", "fp32"), 2.0)
    pf = get(cfg, "rosa", "fp32", "prefill")
    g = pf["r"].get("gflops") if pf and pf["ok"] else None
    target(cfg, "prefill ≥ 60% of the FP32 ceiling", 100 * g / ceil if g and ceil else None, 60.0, fmt="%.0f%%")
P()
P("## Tokenizer encoding, one thread, English text (%s)" % E["BENCH_TEXT"])
P()
for l in open(sys.argv[3]):
    P("- " + l.strip())
P()
w = int(E["BENCH_WALL"])
P("## Run")
P()
P("Total wall time: **%d min %02d s** (processes below; wall / CPU seconds, CPU = user + sys)." % (w // 60, w % 60))
P()
P("| config | case | side | wall s | CPU s |")
P("|---|---|---|---:|---:|")
for x in rows:
    P("| %s | %s | %s %s | %s%s | %s |" % (x["cfg"], x["case"], x["side"] if x["side"] == "rosa" else "PyTorch",
                                          x["dtype"], x["wall"],
                                          "" if x["ok"] else " (failed)", x["cpu"] or "–"))
EOF
