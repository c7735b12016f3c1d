#!/usr/bin/env bash
# Run the example workflows through real third-party WES clients against a fresh server:
# the reference wes-client (PyPI wes-service) and toil-wes-cwl-runner (PyPI toil[cwl,server]).
# Each client gets its own virtualenv under ${INTEROP_DIR:-/tmp/toolchest-wes-interop}, since
# they pin other versions of connexion and cwltool. Needs the package installed in the
# current environment (pip install -e .). Prints one PASS/FAIL line per check.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=${INTEROP_DIR:-/tmp/toolchest-wes-interop}
mkdir -p "$work"
port=${PORT:-18765}
url="http://127.0.0.1:$port"

[ -x "$work/wesc/bin/wes-client" ] || { python3 -m venv "$work/wesc" && "$work/wesc/bin/pip" install -q wes-service; }
[ -x "$work/toil/bin/toil-wes-cwl-runner" ] || { python3 -m venv "$work/toil" && "$work/toil/bin/pip" install -q 'toil[cwl,server]'; }

rm -rf "$work/data"
toolchest-wes serve --port "$port" --data-dir "$work/data" --log-level WARNING 2>"$work/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 100); do curl -sf "$url/health" >/dev/null && break; sleep 0.2; done

failures=0
check() {  # check NAME COMMAND...: PASS if the command exits 0
  if "${@:2}" >"$work/$1.out" 2>"$work/$1.err"; then echo "PASS $1"; else echo "FAIL $1 (see $work/$1.err)"; failures=$((failures + 1)); fi
}
expect_fail() {  # expect_fail NAME COMMAND...: PASS if the command exits non-zero
  if "${@:2}" >"$work/$1.out" 2>"$work/$1.err"; then echo "FAIL $1 (exited 0)"; failures=$((failures + 1)); else echo "PASS $1"; fi
}

cd "$root/examples/two-step"
check wes-client-two-step "$work/wesc/bin/wes-client" --host "127.0.0.1:$port" --proto http \
  --attachments "tools/sort.cwl,tools/count-unique.cwl,fruit.txt" count-lines.cwl count-lines.json
check wes-client-list "$work/wesc/bin/wes-client" --host "127.0.0.1:$port" --proto http --list
check wes-client-info "$work/wesc/bin/wes-client" --host "127.0.0.1:$port" --proto http --info
check toil-two-step env PATH="$work/toil/bin:$PATH" toil-wes-cwl-runner --wes_endpoint "$url" count-lines.cwl count-lines.json
cd "$root/examples/hello"
check toil-hello-engine-options env PATH="$work/toil/bin:$PATH" toil-wes-cwl-runner --wes_endpoint "$url" hello.cwl hello.json --clean=always
cd "$root/tests/cwl"
expect_fail toil-failing-workflow env PATH="$work/toil/bin:$PATH" toil-wes-cwl-runner --wes_endpoint "$url" fail.cwl

echo "$failures failed"
exit $((failures > 0))
