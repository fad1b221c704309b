"""A stock Debian i386 kernel (linux-image-686, Linux 6.1) with a busybox initramfs.

The kernel and busybox come from the system's package manager at test time (cached;
tests/linux_guest.py).  Slow (each boot is some 10^9 instructions): marked `linux`, so
`pytest -m "not linux"` leaves it out locally; CI runs it.

- `rdebug run` with nothing but `console=ttyS0` (and `rdebug.shell`, which only our
  /init reads): Linux finds the LAPIC, the IOAPIC, the PCI bus and ACPI, calibrates the
  LAPIC timer and ticks with it (/init prints the LOC and IRQ 0 lines of
  /proc/interrupts), the commands typed with --serial-input run in a shell,
  `poweroff -f` ends the run with exit status 0;
- record, then replay: the same transcript byte for byte, the same final state, also
  when the replay's runs stop every ~10^5 instructions; seeks in a Session (forwards,
  then backwards from a checkpoint) give a straight replay's state;
- the kernel's own symbols (kallsyms, from the bzImage) name functions in the Session
  and in gdb: break in the LAPIC timer interrupt (`sysvec_apic_timer_interrupt`),
  reverse-continue to the previous tick, a watchpoint on `jiffies` + reverse-continue
  stops at the store of the tick (`tick_do_update_jiffies64`, or `do_timer`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import rdebug
import rdebug.gdb
from rdebug.host.sources import FileSerialSource, LiveInputs
from rdebug.machine.machine import Machine, MachineConfig, StopEvent, StopReason
from rdebug.replay.recording import Recording, record
from rdebug.replay.trace import GuestSpec, Trace, sha256
from tests.conftest import ROOT, Capture, Replay
from tests.linux_guest import (
    INIT_DONE,
    LinuxGuest,
    Unavailable,
    gdb_icount,
    linux_guest,
    watch_values,
)

pytestmark = [pytest.mark.linux, pytest.mark.timeout(3600)]

#: What a user types at the shell (the first newlines may be lost while the serial
#: driver resets its FIFO when the console is opened).
TYPED = (
    b"\n" * 24
    + b"echo typed-$((6 * 7))\n"
    + b"grep -E 'IO-APIC|LOC' /proc/interrupts\n"
    + b"ls /sys/bus/pci/devices\n"
    + b"poweroff -f\n"
)
#: Time-saving boot options for the record/replay tests (the run test boots plainly).
QUICK = "console=ttyS0 cryptomgr.notests rdebug.shell"


@pytest.fixture(scope="module")
def guest() -> LinuxGuest:
    try:
        return linux_guest()
    except Unavailable as exc:
        pytest.skip(f"the package manager cannot give Debian's i386 kernel: {exc}")


def test_run_boots_to_a_shell_and_powers_off(guest: LinuxGuest, tmp_path: Path) -> None:
    typed = tmp_path / "typed"
    typed.write_bytes(TYPED)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rdebug",
            "run",
            str(guest.kernel),
            "--initrd",
            str(guest.initramfs),
            "--append",
            "console=ttyS0 rdebug.shell",
            "--serial-input",
            str(typed),
        ],
        capture_output=True,
        cwd=ROOT,
        timeout=3000,
        check=False,
    )
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, (result.stderr.decode(), out[-3000:])
    assert result.stderr == b""
    for line in (
        "Using 1 I/O APICs",  # the IOAPIC from the ACPI MADT
        "PCI host bridge to bus 0000:00",
        "pci 0000:00:00.0: [8086:1237]",
        "pci 0000:00:01.0: [8086:7000]",
        "ACPI: PM: (supports S0 S5)",
        INIT_DONE,
        "typed-42",
        "0000:00:01.0",
        "reboot: Power down",
    ):
        assert line in out, line
    # The tick: the LAPIC timer (its calibration against the PIT read a fresh current
    # count); the PIT is IRQ0 through the IOAPIC (pin 2), used while calibrating.
    assert "APIC frequency too slow" not in out and "segfault" not in out
    assert _local_timer_interrupts(out) > 100
    timer = [line.split() for line in out.splitlines() if line.strip().startswith("0:")]
    assert timer and "IO-APIC" in timer[-1] and "2-edge" in timer[-1], timer


def _local_timer_interrupts(out: str) -> int:
    """The LOC count of the first /proc/interrupts listing (printed by /init)."""
    loc = [line.split() for line in out.splitlines() if line.strip().startswith("LOC:")]
    assert loc, out[-3000:]
    return int(loc[0][1])


@pytest.fixture(scope="module")
def recorded(
    guest: LinuxGuest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Recording, bytes, str]]:
    """A recorded boot + shell session: (recording, transcript, final state hash)."""
    data = guest.kernel.read_bytes()
    initrd = guest.initramfs.read_bytes()
    spec = GuestSpec(
        guest.kernel.name,
        str(guest.kernel),
        sha256(data),
        append=QUICK,
        initrd=str(guest.initramfs),
        initrd_sha256=sha256(initrd),
    )
    out = Capture()
    hashes: list[str] = []

    def run(machine: Machine) -> StopEvent:
        stop = machine.run()
        hashes.append(machine.state_hash())
        return stop

    folder = tmp_path_factory.mktemp("linux") / "trace"
    recording = record(
        folder,
        data,
        spec,
        MachineConfig(memory_mb=256),
        LiveInputs({0: FileSerialSource(TYPED)}),
        serial=[out],
        run=run,
        initrd=initrd,
    )
    assert recording.stop.reason is StopReason.EXIT and recording.stop.exit_code == 0
    yield recording, bytes(out.data), hashes[0]


@pytest.fixture(scope="module")
def replayed(recorded: tuple[Recording, bytes, str]) -> tuple[bytes, str, dict[int, str]]:
    """A straight replay of the recording: (transcript, final state hash, the state hash
    at two odd places in it)."""
    recording = recorded[0]
    end = recording.stop.icount
    places = (end // 3 + 104729, end * 4 // 5 + 7919)  # inside blocks, most likely
    out = Capture()
    replay = Replay(Trace.open(recording.trace.path), [out])
    try:
        machine = replay.machine
        hashes = {}
        for place in places:
            assert machine.run(place).reason is StopReason.TARGET
            hashes[place] = machine.state_hash()
        stop = machine.run()
        assert stop.icount == end, stop
        return bytes(out.data), machine.state_hash(), hashes
    finally:
        replay.close()


def test_replay_gives_the_recorded_transcript_and_state(
    recorded: tuple[Recording, bytes, str], replayed: tuple[bytes, str, dict[int, str]]
) -> None:
    recording, transcript, final_hash = recorded
    text = transcript.decode(errors="replace")
    assert INIT_DONE in text and "typed-42" in text and "Power down" in text
    assert "Using 1 I/O APICs" in text and "PCI host bridge to bus 0000:00" in text
    assert "APIC frequency too slow" not in text and _local_timer_interrupts(text) > 100
    assert replayed[0] == transcript
    assert replayed[1] == final_hash
    # The trace keeps the initrd and the KASLR offset the kernel chose.
    trace = Trace.open(recording.trace.path)
    assert trace.initrd_image() is not None
    assert trace.info.guest.kernel_offset is not None


#: Runs of a replay cut into short stretches (a prime, so the cuts fall everywhere in
#: the kernel's loops); what a stretch ends on is the machine's business, not the log's.
STRETCH = 99_991


def test_a_replay_cut_into_short_runs_gives_the_recorded_state(
    recorded: tuple[Recording, bytes, str],
) -> None:
    """Where the machine's runs end must change nothing the guest can see: a replay
    that stops every STRETCH instructions (tens of thousands of stops, at checkpoint
    boundaries, Ctrl-C, progress reports: wherever a front end stops it) ends in the
    recorded state with the recorded transcript.  (A run that ended in the window
    between the idle PIT ticks the counter took and the kernel's new PIT count in
    timer_irq_works once lost the next tick.)"""
    recording, transcript, final_hash = recorded
    out = Capture()
    replay = Replay(Trace.open(recording.trace.path), [out])
    try:
        machine = replay.machine
        while (stop := machine.run(machine.icount + STRETCH)).reason is StopReason.TARGET:
            pass
        assert stop.icount == recording.stop.icount, stop
        assert machine.state_hash() == final_hash
    finally:
        replay.close()
    assert bytes(out.data) == transcript


def test_seeks_give_a_straight_replays_state(
    recorded: tuple[Recording, bytes, str], replayed: tuple[bytes, str, dict[int, str]]
) -> None:
    early, late = sorted(replayed[2])
    with rdebug.open(recorded[0].trace.path) as session:
        session.seek(late)
        assert session.state_hash() == replayed[2][late]
        session.seek(early)  # backwards: from a checkpoint
        assert session.state_hash() == replayed[2][early]


def test_kernel_symbols_and_a_gdb_reverse_session(recorded: tuple[Recording, bytes, str]) -> None:
    recording = recorded[0]
    with rdebug.open(recording.trace.path) as session:
        handler = session.address("sysvec_apic_timer_interrupt")
        do_timer = session.address("do_timer")
        jiffies = session.address("jiffies")
        assert session.symbol(do_timer + 3) == "do_timer+0x3"
        with rdebug.gdb.attach(session) as gdb:
            gdb.command("break sysvec_apic_timer_interrupt")
            ticks = []
            for _ in range(3):
                stop = gdb.command("continue", timeout=1800).stopped
                assert stop is not None and stop["reason"] == "breakpoint-hit", stop
                assert gdb.value("$pc") == handler
                ticks.append(gdb_icount(gdb))
            back = gdb.command("reverse-continue", timeout=1800).stopped
            assert back is not None and back["reason"] == "breakpoint-hit", back
            assert gdb_icount(gdb) == ticks[1]  # the previous tick, not any other
            gdb.command("delete")
            gdb.command(f"watch *(unsigned int *) {jiffies:#x}")
            back = gdb.command("reverse-continue", timeout=1800)
            assert back.stopped is not None and "watchpoint" in back.stopped["reason"], back
            where = gdb.command("info symbol $pc").console
            # the LAPIC timer's tick path updates jiffies in tick_do_update_jiffies64
            assert "tick_do_update_jiffies64" in where or "do_timer" in where, where
            # Going backwards, gdb's "Old value" is the later one: the store added the
            # ticks elapsed (1, or a few after an idle stretch).
            later, earlier = (int(v) for v in watch_values(back.console))
            assert earlier < later <= earlier + 1000
