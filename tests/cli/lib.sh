# Shared by the CLI test scripts (sourced): counters, PASS/FAIL lines, running kiln with its
# output captured under $T, and the sanitizer check. The sourcing script sets KILN, T and,
# optionally, K_TIMEOUT (seconds per command, default 300).
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "PASS $1"; }
bad() {
    fail=$((fail + 1))
    echo "FAIL $1"
    [ -f "$T/stderr" ] && sed -e 's/^/     stderr: /' "$T/stderr" | head -n 20
    [ -f "$T/stdout" ] && sed -e 's/^/     stdout: /' "$T/stdout" | tail -n 30
}

# Runs kiln; status in $rc, output in $T/stdout and $T/stderr.
k() {
    timeout "${K_TIMEOUT:-300}" "$KILN" "$@" >"$T/stdout" 2>"$T/stderr" </dev/null
    rc=$?
}

sanitizer_clean() {
    ! grep -q -e 'AddressSanitizer' -e 'LeakSanitizer' -e 'runtime error' "$T/stdout" "$T/stderr"
}
