#!/usr/bin/env bash
# The test command (README "Run the tests"): installs dependencies, checks
# formatting, builds the product with clang's thread-safety analysis and runs
# clang-tidy on the changed files (tsa), builds the release and ASan+UBSan
# trees, runs ctest on both, runs the TSan stress tests and a short fuzz run of
# the wire decoder.
#
#   scripts/test.sh            everything
#   KVCAKE_SKIP_DEPS=1 ...     skip apt-get
#   KVCAKE_STAGES="release asan" scripts/test.sh   a subset of: format tsa release asan tsan fuzz
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
JOBS=${KVCAKE_JOBS:-$(nproc)}
STAGES=${KVCAKE_STAGES:-"format tsa release asan tsan fuzz"}
export CTEST_OUTPUT_ON_FAILURE=1

stage() { echo; echo "=== [$(date +%H:%M:%S)] $*"; }
has_stage() { [[ " $STAGES " == *" $1 "* ]]; }

if [[ -z "${KVCAKE_SKIP_DEPS:-}" ]]; then
  stage "install dependencies"
  scripts/install-deps.sh
fi

if [[ ! -e ../shared/golden/cake_vectors.json && -z "${KVCAKE_SHARED_DIR:-}" ]]; then
  echo "note: ../shared (golden vectors, traces) not found beside the checkout; tests that need it fail loudly"
fi

if has_stage format; then
  stage "clang-format check"
  scripts/check-format.sh
fi

if has_stage tsa; then
  # clang-14 at -O0 without debug info (the analysis runs in the front end):
  # every library and binary of the product (target `product`), no tests.
  stage "tsa: clang thread-safety analysis build (-Werror=thread-safety) + clang-tidy"
  cmake --preset tsa >/dev/null
  cmake --build --preset tsa -j "$JOBS" --target product
  # Files changed since origin/main (else HEAD~1); nothing on a clone without either.
  scripts/check-tidy.sh --build-dir build/tsa
fi

if has_stage release; then
  stage "release: configure + build"
  # Warnings are errors in the release tree (g++): KVCAKE_WERROR.
  cmake --preset release -DKVCAKE_WERROR=ON >/dev/null
  cmake --build --preset release -j "$JOBS"
  stage "release: ctest"
  ctest --preset release -j "$JOBS"
fi

if has_stage asan; then
  stage "asan (ASan+UBSan): configure + build"
  cmake --preset asan >/dev/null
  cmake --build --preset asan -j "$JOBS"
  stage "asan: ctest"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --preset asan -j "$JOBS"
fi

if has_stage tsan; then
  stage "tsan: build + run tests labelled tsan"
  cmake --preset tsan >/dev/null
  mapfile -t tsan_targets < <(sed -n 's/^# tsan-target: //p' tests/*/CMakeLists.txt 2>/dev/null)
  if (( ${#tsan_targets[@]} )); then
    cmake --build --preset tsan -j "$JOBS" --target "${tsan_targets[@]}"
    # UCX's memory hooks do not work under TSan; they are read when libucp loads.
    # tests/tsan.supp: races inside Debian's uninstrumented RocksDB (see there).
    UCX_MEM_EVENTS=no \
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$ROOT/tests/tsan.supp" \
      ctest --preset tsan -j "$JOBS"
  else
    echo "no tsan targets declared"
  fi
fi

if has_stage fuzz && [[ -f tests/fuzz/CMakeLists.txt ]]; then
  stage "fuzz: short libFuzzer runs of the wire-frame and op-message decoders"
  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz -j "$JOBS" --target frame_fuzzer messages_fuzzer
  # New inputs go to a scratch corpus (the first directory); the checked-in seeds stay as they are.
  scratch=$(mktemp -d)
  ./build/fuzz/bin/frame_fuzzer -max_total_time=30 -timeout=5 "$scratch" tests/fuzz/corpus
  rm -rf "$scratch"
  scratch=$(mktemp -d)
  ./build/fuzz/bin/messages_fuzzer -max_total_time=20 -timeout=5 "$scratch"
  rm -rf "$scratch"
fi

stage "all stages passed: $STAGES"
