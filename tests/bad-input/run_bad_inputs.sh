#!/bin/sh
# Runs every case of cases.txt through the kiln CLI and checks that it fails cleanly:
# non-zero exit below 128 (no signal), no sanitizer report, exactly one stderr line, starting
# with 'kiln: ' and holding the expected text, and nothing left in the --save-outputs folder.
#
# usage: run_bad_inputs.sh KILN_BINARY SHARED_DIR [NAME_FILTER]
# KILN_BAD_INPUT_CASES=FILE runs another manifest (pending.txt: known crashes not fixed yet).
set -u

if [ $# -lt 2 ]; then
    echo "usage: $0 KILN_BINARY SHARED_DIR [NAME_FILTER]" >&2
    exit 2
fi
KILN=$1
SHARED=$2
FILTER=${3:-}
HERE=$(cd "$(dirname "$0")" && pwd)/files
CASES=${KILN_BAD_INPUT_CASES:-$(dirname "$0")/cases.txt}
TIMEOUT=${KILN_BAD_INPUT_TIMEOUT:-120}

[ -x "$KILN" ] || { echo "run_bad_inputs: '$KILN' is not an executable" >&2; exit 2; }
[ -d "$SHARED/sr-fixtures" ] || { echo "run_bad_inputs: no sr-fixtures under '$SHARED'" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bad-input.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT INT TERM

# Cases that cannot be committed as plain files.
TMPM=$WORK/models
mkdir -p "$TMPM"
cp "$HERE/ext_symlink.onnx" "$TMPM/ext_symlink.onnx"
ln -s /etc/passwd "$TMPM/link.bin"            # exists, but outside the model's folder
truncate -s 5G "$TMPM/over_limit.onnx"        # sparse: over the 4 GiB default limit, no disk used

subst() {
    printf '%s' "$1" | sed -e "s|@HERE|$HERE|g" -e "s|@SR|$SHARED/sr-fixtures|g" -e "s|@TMP|$TMPM|g"
}
trim() {
    printf '%s' "$1" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'
}

pass=0
fail=0
n=0
failed_list=""
while IFS='|' read -r kind model args expect; do
    kind=$(trim "$kind")
    case $kind in ''|'#'*) continue ;; esac
    n=$((n + 1))
    model=$(trim "$model")
    args=$(trim "${args:-}")
    expect=$(trim "${expect:-}")
    label=$(printf '%s' "$model $args" | sed -e 's|[^ ]*/||g')
    name="$n:$kind:$label"
    if [ -n "$FILTER" ]; then
        case $name in *"$FILTER"*) ;; *) continue ;; esac
    fi
    case $model in @*) model=$(subst "$model") ;; *) model=$HERE/$model ;; esac
    args=$(subst "$args")

    out=$WORK/case$n
    mkdir -p "$out/saved"
    save=""
    [ "$kind" = run ] && save="--save-outputs $out/saved"
    # Arguments hold no spaces (paths under the repo and the shared folder), so word splitting is intended.
    # shellcheck disable=SC2086
    timeout "$TIMEOUT" "$KILN" "$kind" "$model" $args $save >"$out/stdout" 2>"$out/stderr" </dev/null
    rc=$?

    why=""
    lines=$(wc -l <"$out/stderr")
    first=$(head -n 1 "$out/stderr")
    if [ $rc -eq 0 ]; then
        why="exit status 0 (the bad input was accepted)"
    elif [ $rc -eq 124 ]; then
        why="timed out after ${TIMEOUT}s"
    elif [ $rc -ge 128 ]; then
        why="killed by signal $((rc - 128))"
    elif grep -q -e 'AddressSanitizer' -e 'LeakSanitizer' -e 'runtime error' -e 'UndefinedBehaviorSanitizer' \
        "$out/stdout" "$out/stderr"; then
        why="sanitizer report"
    elif [ "$lines" -ne 1 ] || [ "$(wc -c <"$out/stderr")" -eq 0 ]; then
        why="stderr has $lines line(s), expected exactly one"
    else
        case $first in
        'kiln: '*) ;;
        *) why="stderr line does not start with 'kiln: '" ;;
        esac
    fi
    if [ -z "$why" ]; then
        rest=$expect
        while [ -n "$rest" ]; do
            part=${rest%%' && '*}
            if [ "$part" = "$rest" ]; then rest=""; else rest=${rest#*' && '}; fi
            part=$(trim "$part")
            case $first in
            *"$part"*) ;;
            *) why="message lacks '$part'"; break ;;
            esac
        done
    fi
    if [ -z "$why" ] && [ -n "$(ls -A "$out/saved")" ]; then
        why="files left in --save-outputs: $(ls -A "$out/saved" | tr '\n' ' ')"
    fi

    if [ -z "$why" ]; then
        pass=$((pass + 1))
        echo "PASS $name"
        echo "     $first"
    else
        fail=$((fail + 1))
        failed_list="$failed_list $n"
        echo "FAIL $name: $why (exit $rc)"
        sed -e 's/^/     stderr: /' "$out/stderr" | head -n 40
        sed -e 's/^/     stdout: /' "$out/stdout" | head -n 5
    fi
done <"$CASES"

echo "bad-input: $pass passed, $fail failed"
[ $fail -eq 0 ] || { echo "failed cases:$failed_list"; exit 1; }
exit 0
