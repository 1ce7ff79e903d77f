#!/bin/sh
# Every GPU figure of docs/PERFORMANCE.md's "loom bench on the GPU" section, in one run, one JSON (or log) per figure.
#
#   bench/gpu_figures.sh LOOM_BINARY OUT_DIR [GROUP...]
#
# GROUPs (default: all, in this order; each takes a few minutes on one H200):
#   tests         the CUDA backend's tests (device probes included): OUT_DIR/cuda_tests.log
#   gemma3        gemma3-1b in bf16/affine-4/mxfp4/nvfp4, gemma3-4b bf16/affine-4 and gemma3-12b bf16 with one
#                 896 px image: OUT_DIR/bench_<preset>_<format>.json
#   gemma4        gemma4-e4b and gemma4-31b in bf16 and affine-4 with one 280-soft-token image
#   transformers  bench/compare_transformers.py on gemma3-4b (bf16; affine-4 vs bf16) and gemma4-e4b (bf16):
#                 OUT_DIR/compare_<name>.json (snapshots are written to OUT_DIR/snapshots and removed afterwards);
#                 the groups transformers-gemma3 and transformers-gemma4 run its two halves
# A failing command is logged to OUT_DIR/<name>.err and the run goes on with the next one.
set -u
LOOM=${1:?usage: bench/gpu_figures.sh LOOM_BINARY OUT_DIR [GROUP...]}
OUT=${2:?usage: bench/gpu_figures.sh LOOM_BINARY OUT_DIR [GROUP...]}
shift 2
GROUPS_TO_RUN=${*:-tests gemma3 gemma4 transformers}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"

bench() {  # name, then loom bench arguments
  name=$1
  shift
  echo "== $name: loom bench $*" >&2
  if ! "$LOOM" bench --device cuda --json "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"; then
    echo "   failed (see $OUT/$name.err)" >&2
  fi
}

compare() {  # name, transformers snapshot, loom snapshot
  echo "== $1: compare_transformers.py --model $2 --loom-model $3" >&2
  if ! python3 "$HERE/compare_transformers.py" --model "$2" --loom-model "$3" --loom "$LOOM" --loom-args="--prefill-tokens 512" \
    >"$OUT/$1.json" 2>"$OUT/$1.err"; then
    echo "   failed (see $OUT/$1.err)" >&2
  fi
}

save() {  # preset, format, folder
  rm -rf "$3"
  "$LOOM" bench --synthetic "$1" --format "$2" --save "$3" >/dev/null 2>>"$OUT/save.err"
}

for group in $GROUPS_TO_RUN; do
  case $group in
    tests)
      test_binary=$(dirname "$LOOM")/tests/cuda_tests
      "$test_binary" >"$OUT/cuda_tests.log" 2>&1 || echo "   cuda_tests failed (see $OUT/cuda_tests.log)" >&2
      ;;
    gemma3)
      for format in bf16 affine-4 mxfp4 nvfp4; do
        bench "bench_gemma3-1b_$format" --synthetic gemma3-1b --format "$format"
      done
      for format in bf16 affine-4; do
        bench "bench_gemma3-4b_$format" --synthetic gemma3-4b --format "$format" --images 1
      done
      bench bench_gemma3-12b_bf16 --synthetic gemma3-12b --format bf16 --images 1
      ;;
    gemma4)
      for preset in gemma4-e4b gemma4-31b; do
        for format in bf16 affine-4; do
          bench "bench_${preset}_$format" --synthetic "$preset" --format "$format" --images 1
        done
      done
      ;;
    transformers)
      sh "$HERE/gpu_figures.sh" "$LOOM" "$OUT" transformers-gemma3 transformers-gemma4
      ;;
    transformers-gemma3)
      snapshots=$OUT/snapshots
      save gemma3-4b bf16 "$snapshots/gemma3-4b-bf16"
      compare compare_gemma3-4b_bf16 "$snapshots/gemma3-4b-bf16" "$snapshots/gemma3-4b-bf16"
      save gemma3-4b affine-4 "$snapshots/gemma3-4b-affine-4"
      compare compare_gemma3-4b_affine-4 "$snapshots/gemma3-4b-bf16" "$snapshots/gemma3-4b-affine-4"
      rm -rf "$snapshots"
      ;;
    transformers-gemma4)
      snapshots=$OUT/snapshots
      save gemma4-e4b bf16 "$snapshots/gemma4-e4b-bf16"
      compare compare_gemma4-e4b_bf16 "$snapshots/gemma4-e4b-bf16" "$snapshots/gemma4-e4b-bf16"
      rm -rf "$snapshots"
      ;;
    *)
      echo "unknown group '$group' (tests, gemma3, gemma4, transformers, transformers-gemma3, transformers-gemma4)" >&2
      exit 2
      ;;
  esac
done
