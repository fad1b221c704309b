#!/bin/sh
# Run the sample guests under QEMU.
#
#   ./run_qemu.sh NAME [INPUT]   run build/NAME.elf, COM1 on stdout; INPUT (if
#                                given) is typed into COM1 after a short delay
#   ./run_qemu.sh --check        run every deterministic guest, compare its
#                                COM1 output with expected/NAME.txt and its
#                                exit status with 1 (guest wrote 0 to 0xF4)
#   ./run_qemu.sh --update       rewrite expected/*.txt from QEMU's output
#
# We use -display none rather than -nographic: with -nographic QEMU tells
# SeaBIOS to mirror its console to COM1, so firmware banners would precede the
# guest's output.  With -display none COM1 carries only the guest's bytes.
set -u
cd "$(dirname "$0")"

QEMU=${QEMU:-qemu-system-i386}
INPUT_DELAY=${INPUT_DELAY:-1}

run() { # run NAME [INPUT]: COM1 output on stdout, returns QEMU's status
    name=$1
    if [ $# -ge 2 ]; then
        # Keep stdin open a while after the input so QEMU reads all of it.
        { sleep "$INPUT_DELAY"; printf '%s' "$2"; sleep 2; } |
            timeout 60 "$QEMU" -kernel "build/$name.elf" -display none \
                -serial stdio -monitor none \
                -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
                -icount shift=7 -no-reboot
    else
        timeout 60 "$QEMU" -kernel "build/$name.elf" -display none \
            -serial stdio -monitor none \
            -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
            -icount shift=7 -no-reboot </dev/null
    fi
}

# name and input of each guest with an expected output file
DETERMINISTIC="hello timer usermode crc memcopy echo apic paging sysenter"
input_of() { [ "$1" = echo ] && printf 'abcq'; }

case "${1:-}" in
--check|--update)
    fail=0
    for g in $DETERMINISTIC; do
        out=$(mktemp)
        if [ "$g" = echo ]; then
            run "$g" "$(input_of "$g")" >"$out"
        else
            run "$g" >"$out"
        fi
        status=$?
        if [ "$1" = --update ]; then
            cat "$out" >"expected/$g.txt"
        fi
        if [ $status -ne 1 ]; then
            echo "FAIL $g: exit status $status (want 1)"
            fail=1
        elif ! cmp -s "$out" "expected/$g.txt"; then
            echo "FAIL $g: output differs from expected/$g.txt"
            diff "expected/$g.txt" "$out" | head -20
            fail=1
        else
            echo "ok   $g"
        fi
        rm -f "$out"
    done
    # clock is not deterministic: check its shape only
    out=$(run clock)
    status=$?
    if [ $status -eq 1 ] && printf '%s\n' "$out" | grep -Eq '^rtc: [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$' &&
        printf '%s\n' "$out" | grep -Eq '^tsc delta: [0-9]+$' &&
        printf '%s\n' "$out" | grep -q '^tsc monotonic: yes$'; then
        echo "ok   clock"
    else
        echo "FAIL clock: status $status"
        printf '%s\n' "$out"
        fail=1
    fi
    exit $fail
    ;;
''|-h|--help)
    sed -n '2,13p' "$0"
    exit 2
    ;;
*)
    run "$@"
    ;;
esac
