#!/usr/bin/env bash
# Runs clang-tidy-14 (checks in .clang-tidy) on the C++ sources changed
# relative to a base revision, with the compile commands of a build tree.
# Fails (exit 1) on any finding.
#
#   scripts/check-tidy.sh                  files changed since the base (see below)
#   scripts/check-tidy.sh --base REV       files changed since REV
#   scripts/check-tidy.sh --all            every source in the build tree's compile_commands.json
#   scripts/check-tidy.sh --build-dir DIR  compile commands of DIR (default build/tsa)
#
# The base is origin/main when that exists, else HEAD~1. A changed header is
# checked through the sources that include it directly (and itself matches
# HeaderFilterRegex). A clone without such a base (a shallow CI clone of main)
# has nothing to compare with: the script says so and checks nothing, which
# keeps CI fast (--all takes about 4 CPU-minutes for the product sources
# alone); pass --all or --base to check anyway. A clone of main whose
# origin/main is HEAD likewise has no changes to check. Sources outside the
# build tree (CUDA files, targets not configured there) are skipped with a
# note.
set -euo pipefail
cd "$(dirname "$0")/.."
TIDY=${CLANG_TIDY:-clang-tidy-14}
JOBS=${KVCAKE_JOBS:-$(nproc)}
build_dir=build/tsa
base=""
all=0
while (($#)); do
  case "$1" in
    --all) all=1 ;;
    --base)
      base=${2:?--base needs a revision}
      shift
      ;;
    --build-dir)
      build_dir=${2:?--build-dir needs a directory}
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "check-tidy: unknown argument '$1' (see --help)" >&2
      exit 2
      ;;
  esac
  shift
done

db="$build_dir/compile_commands.json"
if [[ ! -f "$db" ]]; then
  echo "check-tidy: $db not found; configure first (cmake --preset tsa)" >&2
  exit 2
fi
if ! command -v "$TIDY" >/dev/null 2>&1; then
  echo "check-tidy: $TIDY not found (scripts/install-deps.sh installs clang-tidy-14)" >&2
  exit 2
fi

# The sources the build tree compiles, relative to the repository root.
root=$(pwd)
mapfile -t known < <(python3 - "$db" "$root" <<'EOF'
import json, os, sys
root = sys.argv[2]
for e in json.load(open(sys.argv[1])):
    f = os.path.normpath(os.path.join(e["directory"], e["file"]))
    if f.startswith(root + "/"):
        print(os.path.relpath(f, root))
EOF
)

if ((all)); then
  files=("${known[@]}")
else
  if [[ -z "$base" ]]; then
    if git rev-parse -q --verify origin/main >/dev/null; then
      base=origin/main
    elif git rev-parse -q --verify HEAD~1 >/dev/null; then
      base=HEAD~1
    else
      echo "check-tidy: no base revision (no origin/main, no HEAD~1: a shallow clone);" \
        "nothing to check (--all checks every file)"
      exit 0
    fi
  fi
  if ! git rev-parse -q --verify "$base^{commit}" >/dev/null; then
    echo "check-tidy: base '$base' is not a revision" >&2
    exit 2
  fi
  # Changed (added, copied, modified, renamed) since the merge base, plus
  # uncommitted changes and new files git does not ignore.
  mapfile -t changed < <({
    git diff --name-only --diff-filter=ACMR "$(git merge-base "$base" HEAD)" -- '*.cc' '*.h'
    git ls-files --others --exclude-standard -- '*.cc' '*.h'
  } | grep -v '/corpus/' || true)
  declare -A want=()
  for f in "${changed[@]}"; do
    case "$f" in
      *.cc) want[$f]=1 ;;
      *.h)
        # The sources that include the header (by its repository path).
        while IFS= read -r src; do want[$src]=1; done < <(git grep -l --fixed-strings \
          "#include \"${f#client/include/}\"" -- '*.cc' 2>/dev/null || true)
        ;;
    esac
  done
  files=()
  declare -A in_db=()
  for f in "${known[@]}"; do in_db[$f]=1; done
  for f in "${!want[@]}"; do
    if [[ -n "${in_db[$f]:-}" ]]; then
      files+=("$f")
    elif [[ -f "$f" ]]; then
      echo "check-tidy: $f is not compiled in $build_dir; skipped"
    fi
  done
  if ((${#files[@]} == 0)); then
    echo "check-tidy: no C++ source changed since $base"
    exit 0
  fi
fi

mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -u)
echo "check-tidy: $TIDY on ${#files[@]} file(s)${base:+ changed since $base}, $JOBS at a time"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Each file is one clang-tidy run; its output is printed only when it fails.
if ! printf '%s\n' "${files[@]}" | xargs -P "$JOBS" -I{} sh -c \
  "out=\$('$TIDY' -p '$build_dir' --quiet '{}' 2>&1) || { printf '%s\n' \"\$out\"; exit 1; }" \
  >"$log"; then
  grep -v '^[0-9]* warnings\? generated\.$' "$log" || true
  echo "check-tidy: findings above (.clang-tidy lists the checks; NOLINT(check) with a reason" \
    "where a finding is deliberate)"
  exit 1
fi
echo "check-tidy: ${#files[@]} file(s) clean"
