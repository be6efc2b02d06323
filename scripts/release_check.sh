#!/usr/bin/env bash
# make release-check: does the released wheel work for a user who never saw the checkout?
#
# Builds the sdist and the wheel, checks what they hold, installs the wheel into a fresh
# venv (the machine's python3, not the project's .venv) and runs the installed
# `esms-analytics` from an empty folder outside the repository: --version, a small demo,
# then sync and report against the simulator it serves. Finally proves the extras resolve
# (pip --dry-run). Run from the repository root; PY is the project's python (has `build`).
# Nothing is written inside the repository but what `python -m build` writes (build/ and
# *.egg-info, both git-ignored, and removed again when this run created them).
set -euo pipefail

PY=${PY:-.venv/bin/python}
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")  # absolute: we cd away later
repo=$(pwd)
[[ -f pyproject.toml && -d esms_analytics ]] || {
    echo "release-check: run from the repository root" >&2
    exit 2
}

work=$(mktemp -d "${TMPDIR:-/tmp}/esms-release-check.XXXXXX")
sim_pid=
# What `python -m build` leaves in the checkout (git-ignored); removed again unless it was
# there before (an editable install's egg-info is someone's).
leftovers=()
for path in build esms_analytics.egg-info; do
    [[ -e "$repo/$path" ]] || leftovers+=("$repo/$path")
done
cleanup() {
    if [[ -n "$sim_pid" ]]; then
        kill "$sim_pid" 2>/dev/null || true
        wait "$sim_pid" 2>/dev/null || true
    fi
    # A stale build/lib or SOURCES.txt would slip into the next build: leave none.
    rm -rf ${leftovers[@]+"${leftovers[@]}"}
    rm -rf "$work"
}
trap cleanup EXIT

began=$SECONDS
step() { echo "release-check: $* ($((SECONDS - began)) s)"; }
fail() {
    echo "release-check: FAILED: $*" >&2
    exit 1
}
# run LOG CMD...: CMD's output into $work/LOG; on failure show it and stop, naming the code.
run() {
    local log=$work/$1 rc=0
    shift
    "$@" >"$log" 2>&1 </dev/null || rc=$?
    if [[ $rc != 0 ]]; then
        cat "$log" >&2
        fail "$* exited $rc"
    fi
}

# --- build -------------------------------------------------------------------------
run build.txt "$PY" -m build --sdist --wheel --outdir "$work/dist"
wheels=("$work"/dist/*.whl)
sdists=("$work"/dist/*.tar.gz)
[[ ${#wheels[@]} == 1 && -f ${wheels[0]} ]] || fail "expected one wheel in dist/, got: ${wheels[*]}"
[[ ${#sdists[@]} == 1 && -f ${sdists[0]} ]] || fail "expected one sdist in dist/, got: ${sdists[*]}"
wheel=${wheels[0]}
sdist=${sdists[0]}

# --- contents ----------------------------------------------------------------------
sdist_required="README.md pyproject.toml LICENSE tests/conftest.py"
[[ -f CHANGELOG.md ]] && sdist_required+=" CHANGELOG.md"
"$PY" - "$wheel" "$sdist" "$sdist_required" <<'EOF' || exit 1
import sys
import tarfile
import zipfile

wheel, sdist, sdist_required = sys.argv[1], sys.argv[2], sys.argv[3].split()
names = zipfile.ZipFile(wheel).namelist()
required = [
    "esms_analytics/py.typed",
    "esms_analytics/simulator/server.py",
    "esms_analytics/simulator/history.py",
    "esms_analytics/render.py",
    "esms_analytics/privacy/text.py",
    "esms_analytics/dlt/source.py",
    "esms_analytics/tables/delta.py",
]
problems = [f"wheel lacks {name}" for name in required if name not in names]
forbidden = ("tests/", "benchmarks/", "notebooks/", "data/")
problems += [
    f"wheel holds {name}"
    for name in names
    if any(name.startswith(top) or f"/{top}" in name for top in forbidden)
]
with tarfile.open(sdist) as archive:
    # Members are <name>-<version>/<path>.
    members = {member.split("/", 1)[1] for member in archive.getnames() if "/" in member}
problems += [f"sdist lacks {name}" for name in sdist_required if name not in members]
for problem in problems:
    print(f"release-check: {problem}", file=sys.stderr)
if problems:
    sys.exit(1)
print(f"release-check: wheel built ({len(names)} files), sdist built ({len(members)} files)")
EOF
step "contents checked: $(basename "$wheel"), $(basename "$sdist")"

# --- fresh venv --------------------------------------------------------------------
# The user's shell, not ours: no project paths, no eSMS settings of whoever runs this.
unset PYTHONPATH PYTHONHOME VIRTUAL_ENV ESMS_API_KEY ESMS_SECRET_KEY ESMS_BASE_URL
python3 -m venv "$work/venv"
run install.txt "$work/venv/bin/pip" install --quiet --disable-pip-version-check "$wheel"
bin=$work/venv/bin
step "wheel installed in a fresh venv ($("$bin/python" --version))"

mkdir "$work/user"
cd "$work/user"

location=$("$bin/python" -c 'import esms_analytics; print(esms_analytics.__file__)')
[[ $location == "$work/venv/"* ]] || fail "esms_analytics imports from $location, not the fresh venv"

expected_version=$(cd "$repo" && "$PY" -c 'import esms_analytics; print(esms_analytics.__version__)')
version=$("$bin/esms-analytics" --version)
[[ $version == "esms-analytics $expected_version" ]] ||
    fail "--version printed '$version', expected 'esms-analytics $expected_version'"
step "--version: $version"

# --- demo ----------------------------------------------------------------------------
run demo-help.txt "$bin/esms-analytics" demo --help
[[ -s "$work/demo-help.txt" ]] || fail "demo --help printed nothing"
run demo.txt "$bin/esms-analytics" demo --lake demo-lake --reports demo-reports --days 3 \
    --daily-volume 200 --quiet
[[ -s "$work/demo.txt" ]] || fail "demo printed nothing"
[[ -n $(find demo-reports -name '*.html' -print -quit) ]] || fail "demo wrote no HTML page"
step "demo: $(wc -l <"$work/demo.txt") lines, $(find demo-reports -type f | wc -l) report files"

# --- simulator, sync, report -------------------------------------------------------
# --port 0: the simulator takes a free port and says which in its banner (no race).
"$bin/esms-analytics" simulate --port 0 --days 5 --daily-volume 200 \
    >"$work/simulate.txt" 2>&1 </dev/null &
sim_pid=$!
base_url=
for _ in $(seq 100); do
    base_url=$(sed -n 's/^ *export ESMS_BASE_URL=//p' "$work/simulate.txt")
    [[ -n $base_url ]] && break
    kill -0 "$sim_pid" 2>/dev/null || {
        cat "$work/simulate.txt" >&2
        fail "the simulator exited"
    }
    sleep 0.1
done
[[ -n $base_url ]] || fail "the simulator printed no base URL in 10 s"
keys=$(sed -n 's/^ *export ESMS_API_KEY=//p' "$work/simulate.txt")  # "KEY ESMS_SECRET_KEY=SECRET"
api_key=${keys%% *}
secret_key=${keys#*ESMS_SECRET_KEY=}
"$bin/python" - "$base_url" <<'EOF' || fail "the simulator at $base_url does not answer"
import socket
import sys
import time
from urllib.parse import urlsplit

url = urlsplit(sys.argv[1])
for _ in range(100):
    try:
        socket.create_connection((url.hostname, url.port), timeout=1).close()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit(1)
EOF
step "simulator answers at $base_url"

# The simulator's days are Vietnam's (UTC+7): the last three of its five, ending today.
read -r day_from day_to < <("$bin/python" -c '
from datetime import datetime, timedelta, timezone
today = datetime.now(timezone(timedelta(hours=7))).date()
print(today - timedelta(days=2), today)')
run sync.txt env ESMS_API_KEY="$api_key" ESMS_SECRET_KEY="$secret_key" \
    "$bin/esms-analytics" sync --lake lake --from "$day_from" --to "$day_to" \
    --base-url "$base_url" --quiet --summary-json summary.json
[[ -s "$work/sync.txt" ]] || fail "sync printed nothing"
"$bin/python" - summary.json <<'EOF' || fail "the run summary is not what the sync did"
import json
import sys

summary = json.load(open(sys.argv[1]))
assert summary["exit_code"] == 0 and summary["outcome"] == "ok", summary
assert summary["windows"] == summary["fetched"] > 0 and summary["requests"] > 0, summary
EOF
step "sync $day_from .. $day_to: $(head -n 1 "$work/sync.txt")"

run report.txt "$bin/esms-analytics" report delivery --lake lake
[[ -s "$work/report.txt" ]] || fail "report delivery printed nothing"
step "report delivery: $(wc -l <"$work/report.txt") lines"

kill "$sim_pid"
wait "$sim_pid" 2>/dev/null || true
sim_pid=

# --- extras --------------------------------------------------------------------------
run extras.txt "$bin/pip" install --dry-run --quiet --disable-pip-version-check \
    "$wheel[s3,spark,dlt,delta,iceberg,cloud]"
step "extras resolve (s3, spark, dlt, delta, iceberg, cloud)"

cd "$repo"
echo "release-check: ok ($((SECONDS - began)) s)"
