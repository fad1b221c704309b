"""A store into a register page when unicorn's EIP is stale (issue 14).

In the store hook, unicorn restores EIP from the host return address; when that fails
(seen in Debian's Linux: a LAPIC timer interrupt taken while the kernel patched its
code, then `native_apic_mem_write` storing the next deadline) EIP is still the start of
the translation block.  rdebug used to take the block's first instruction for the store
(`mov ecx, [__FIXADDR_TOP]`, a MOV too), stop, and resume after it: the `lea` before the
store ran a second time and the store faulted at a wrong address (an oops at ffff8380).
Now the store is looked for from EIP on: the MOV whose destination is the stored
address.  The engine's failure cannot be provoked on purpose, so these tests put EIP
where unicorn left it and ask the register pages which instruction stores.
"""

from __future__ import annotations

from rdebug.host.sources import LiveInputs
from rdebug.machine.loader import ImageFormat, parse_image
from rdebug.machine.machine import Machine, MachineConfig, StopReason

BASE = 0x100000
FIXADDR_TOP = 0x100200  # holds 0xfee03000: the LAPIC is at FIXADDR_TOP - 0x3000
LAPIC = 0xFEE00000

# _start:
#   mov esp, 0x90000
#   mov dword [FIXADDR_TOP], 0xfee03000
#   mov eax, 0x380                 ; TMICT
#   mov edx, 0x10
#   call apic_write
#   mov ebx, eax
#   cli
#   hlt
# apic_write:                      ; Linux's native_apic_mem_write, byte for byte
#   mov ecx, [FIXADDR_TOP]
#   lea eax, [ecx+eax-0x3000]
#   mov [eax], edx
#   ret
CODE = bytes.fromhex(
    "bc00000900 c705 00021000 0030e0fe b880030000 ba10000000 e804000000 89c3 fa f4"
    "8b0d00021000 8d840100d0ffff 8910 c3"
)
APIC_WRITE = BASE + 0x22
STORE = APIC_WRITE + 13  # mov [eax], edx
RET = STORE + 2


def _machine() -> Machine:
    machine = Machine(MachineConfig(memory_mb=16), LiveInputs(clock=lambda: 0), [])
    machine.load(parse_image(CODE, "apic-write", ImageFormat.FLAT, load_address=BASE))
    return machine


def test_the_guest_writes_the_timer_once() -> None:
    machine = _machine()
    try:
        stop = machine.run()
        assert stop.reason is StopReason.HALTED, stop
        assert machine.cpu.read("ebx") == LAPIC + 0x380  # the lea ran once
        assert machine.board.lapic.read_register(0x380) == 0x10
    finally:
        machine.close()


def test_the_store_is_found_from_a_stale_block_start() -> None:
    machine = _machine()
    try:
        # Run up to the store: mov esp, mov [], mov eax, mov edx, call, mov ecx, lea.
        assert machine.run(7).reason is StopReason.TARGET
        assert machine.cpu.eip == STORE and machine.cpu.read("eax") == LAPIC + 0x380
        pages = machine._register_pages
        # EIP exact: the store is the instruction at EIP.
        assert pages._find_store(LAPIC + 0x380) == (STORE, RET)
        # EIP stale at the block's start (what unicorn left in Linux): the store is
        # still the `mov [eax], edx`, not the `mov ecx, [FIXADDR_TOP]` at EIP.
        machine.cpu.eip = APIC_WRITE
        assert pages._find_store(LAPIC + 0x380) == (STORE, RET)
        # Another address: no plain store to it in the block.
        assert pages._find_store(LAPIC + 0x390) is None
    finally:
        machine.close()


def test_a_kept_decode_follows_the_registers_and_the_code() -> None:
    """The block's stores are decoded once per code address: the address each stores
    to is worked out again from the registers every time, and new code at the same
    address is decoded again."""
    machine = _machine()
    try:
        assert machine.run(7).reason is StopReason.TARGET
        pages = machine._register_pages
        machine.cpu.eip = APIC_WRITE
        assert pages._find_store(LAPIC + 0x380) == (STORE, RET)
        # The same block, the same kept decode, another register value.
        machine.cpu.write("eax", LAPIC + 0xB0)
        assert pages._find_store(LAPIC + 0xB0) == (STORE, RET)
        assert pages._find_store(LAPIC + 0x380) is None
        # New code there: `mov [eax+4], edx` (8950 04), then `ret` - a longer store.
        assert machine.cpu.write_linear(STORE, bytes.fromhex("895004c3"))
        assert pages._find_store(LAPIC + 0xB4) == (STORE, STORE + 3)
        assert pages._find_store(LAPIC + 0xB0) is None
    finally:
        machine.close()
