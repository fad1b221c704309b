"""IDE (ATA PIO) controller: registers, IDENTIFY, reads and writes, drives, IRQ, reset, errors."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdebug.errors import MachineError
from rdebug.machine.devices.ide import IdeController, MemoryBlockDevice
from tests.unit.devices.conftest import FakeContext

DATA, ERROR, SECTOR_COUNT, LBA_LOW, LBA_MID, LBA_HIGH, DEVICE, STATUS = range(0x1F0, 0x1F8)
FEATURES, COMMAND = ERROR, STATUS
ALT_STATUS = DEVICE_CONTROL = 0x3F6
IRQ = 14

READ_SECTORS, WRITE_SECTORS, IDENTIFY = 0x20, 0x30, 0xEC
MASTER_SECTORS, SLAVE_SECTORS = 300, 8


def pattern(sector: int, salt: int) -> bytes:
    """A sector whose bytes tell which disk and sector they come from."""
    return bytes((sector * 7 + i * 13 + salt + (i >> 8)) & 0xFF for i in range(512))


def disk(sectors: int, salt: int) -> MemoryBlockDevice:
    return MemoryBlockDevice(bytearray(b"".join(pattern(n, salt) for n in range(sectors))))


@pytest.fixture
def master() -> MemoryBlockDevice:
    return disk(MASTER_SECTORS, 0)


@pytest.fixture
def slave() -> MemoryBlockDevice:
    return disk(SLAVE_SECTORS, 0x55)


@pytest.fixture
def ide(ctx: FakeContext, master: MemoryBlockDevice, slave: MemoryBlockDevice) -> IdeController:
    device = IdeController(ctx, master, slave)
    device.reset()
    return device


def inb(ide: IdeController, port: int) -> int:
    return ide.io_read(port, 1)


def outb(ide: IdeController, port: int, value: int) -> None:
    ide.io_write(port, 1, value)


def issue(ide: IdeController, command: int, lba: int = 0, count: int = 1, drive: int = 0) -> None:
    """Program the Command Block for an LBA28 command, then write Command."""
    outb(ide, DEVICE, 0xE0 | drive << 4 | (lba >> 24) & 0x0F)
    outb(ide, SECTOR_COUNT, count & 0xFF)
    outb(ide, LBA_LOW, lba & 0xFF)
    outb(ide, LBA_MID, (lba >> 8) & 0xFF)
    outb(ide, LBA_HIGH, (lba >> 16) & 0xFF)
    outb(ide, COMMAND, command)


def read_block(ide: IdeController, size: int = 2) -> bytes:
    """One DRQ block through the Data register, as `rep insw` (size 2) or `rep insl` (4)."""
    return b"".join(ide.io_read(DATA, size).to_bytes(size, "little") for _ in range(512 // size))


def write_block(ide: IdeController, data: bytes, size: int = 2) -> None:
    for i in range(0, 512, size):
        ide.io_write(DATA, size, int.from_bytes(data[i : i + size], "little"))


def identify_words(ide: IdeController, drive: int = 0) -> list[int]:
    issue(ide, IDENTIFY, drive=drive)
    assert inb(ide, STATUS) == 0x58
    return [ide.io_read(DATA, 2) for _ in range(256)]


def ata_string(words: list[int]) -> str:
    return b"".join(word.to_bytes(2, "big") for word in words).decode("ascii")


# -- registers ----------------------------------------------------------------------------


def test_name_and_ports(ctx: FakeContext, master: MemoryBlockDevice) -> None:
    assert IdeController(ctx, master, None).name == "ide0"
    secondary = IdeController(ctx, master, None, base=0x170, ctrl=0x376, irq=15)
    assert (secondary.name, secondary.ports) == ("ide1", (range(0x170, 0x178), range(0x376, 0x377)))
    assert IdeController(ctx, master, None, base=0x1E8, ctrl=0x3EE).name == "ide@0x1e8"


@pytest.mark.parametrize(
    ("port", "value"),
    [
        (STATUS, 0x50),  # DRDY | DSC
        (ALT_STATUS, 0x50),
        (ERROR, 0x01),  # diagnostic code: device passed
        (SECTOR_COUNT, 0x01),  # the ATA signature: 01h 01h 00h 00h 00h
        (LBA_LOW, 0x01),
        (LBA_MID, 0x00),
        (LBA_HIGH, 0x00),
        (DEVICE, 0x00),
    ],
)
def test_power_on_registers(ide: IdeController, port: int, value: int) -> None:
    assert inb(ide, port) == value


@pytest.mark.parametrize(
    ("port", "written", "read_back"),
    [
        (SECTOR_COUNT, 0x5A, 0x5A),
        (LBA_LOW, 0x12, 0x12),
        (LBA_MID, 0x34, 0x34),
        (LBA_HIGH, 0x56, 0x56),
        (DEVICE, 0xE0, 0xE0),
        (DEVICE, 0xA0, 0xA0),
        (FEATURES, 0x03, 0x01),  # Features is write-only: the port reads Error
    ],
)
def test_register_read_back(ide: IdeController, port: int, written: int, read_back: int) -> None:
    outb(ide, port, written)
    assert inb(ide, port) == read_back


def test_multi_byte_access_to_the_command_block(ide: IdeController) -> None:
    ide.io_write(SECTOR_COUNT, 2, 0x3412)  # Sector Count, LBA Low
    assert (inb(ide, SECTOR_COUNT), inb(ide, LBA_LOW)) == (0x12, 0x34)
    assert ide.io_read(LBA_LOW, 4) == 0x00_00_00_34  # LBA Low..Device
    assert ide.io_read(STATUS, 2) == 0xFF50  # the byte past Status is not ours
    assert ide.io_read(ALT_STATUS, 2) == 0xFF50


# -- IDENTIFY DEVICE ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "value"),
    [
        (0, 0x0040),  # ATA device, fixed
        (1, 1),  # default cylinders: 300 sectors < one 16 x 63 cylinder, at least 1
        (3, 16),  # default heads
        (6, 63),  # default sectors per track
        (47, 0x8010),  # READ/WRITE MULTIPLE: up to 16 sectors a block
        (49, 0x0200),  # LBA supported
        (53, 0x0003),  # words 54-58 and 64-70 valid
        (54, 0),  # current cylinders: 300 // (16 * 63)
        (55, 16),
        (56, 63),
        (59, 0x0110),  # multiple count valid: 16 (QEMU's power-on setting)
        (60, MASTER_SECTORS),  # LBA28 capacity, low word
        (61, 0),
        (80, 0x007E),
        (83, 0x5000),  # FLUSH CACHE supported
    ],
)
def test_identify_words(ide: IdeController, word: int, value: int) -> None:
    assert identify_words(ide)[word] == value


def test_identify_strings_and_checksum(ide: IdeController) -> None:
    words = identify_words(ide)
    assert ata_string(words[27:47]) == "RDEBUG HARDDISK".ljust(40)
    assert ata_string(words[23:27]) == "1.0".ljust(8)
    assert ata_string(words[10:20]) == "RDEBUG00000000000000"
    assert ata_string(identify_words(ide, drive=1)[10:20]) == "RDEBUG00000000000001"
    raw = b"".join(word.to_bytes(2, "little") for word in words)
    assert raw[510] == 0xA5 and sum(raw) % 256 == 0  # integrity word


class HugeDisk:
    """Only as big as IDENTIFY needs to see."""

    sector_count = 1 << 30

    def read_sectors(self, lba: int, count: int) -> bytes:
        return bytes(512 * count)

    def write_sectors(self, lba: int, data: bytes) -> None:
        pass


def test_identify_caps_lba28_capacity_and_cylinders(ctx: FakeContext) -> None:
    ide = IdeController(ctx, HugeDisk(), None)
    words = identify_words(ide)
    assert (words[60], words[61]) == (0xFFFF, 0x0FFF)
    assert words[1] == 16383


def test_identify_protocol(ctx: FakeContext, ide: IdeController) -> None:
    issue(ide, IDENTIFY)
    assert ctx.level(IRQ)
    assert inb(ide, ALT_STATUS) == 0x58  # DRDY | DSC | DRQ
    assert ctx.level(IRQ)  # Alternate Status does not acknowledge
    assert inb(ide, STATUS) == 0x58
    assert not ctx.level(IRQ)  # Status does
    read_block(ide)
    assert inb(ide, STATUS) == 0x50
    assert ctx.rises(IRQ) == [0]
    assert ide.io_read(DATA, 2) == 0  # no transfer: the Data register reads 0


# -- READ SECTORS and WRITE SECTORS -------------------------------------------------------


@pytest.mark.parametrize("size", [2, 4])
@pytest.mark.parametrize(("lba", "count"), [(0, 1), (5, 1), (10, 3), (MASTER_SECTORS - 2, 2)])
@pytest.mark.parametrize("command", [0x20, 0x21])
def test_read_sectors(
    ctx: FakeContext, ide: IdeController, size: int, lba: int, count: int, command: int
) -> None:
    issue(ide, command, lba, count)
    for n in range(count):
        assert ctx.level(IRQ), n  # an interrupt for each DRQ block
        assert inb(ide, STATUS) == 0x58
        assert not ctx.level(IRQ)
        assert read_block(ide, size) == pattern(lba + n, 0)
    assert inb(ide, STATUS) == 0x50
    assert not ctx.level(IRQ)  # none after the last block has been read
    assert len(ctx.rises(IRQ)) == count


@pytest.mark.parametrize("size", [2, 4])
@pytest.mark.parametrize(("lba", "count"), [(0, 1), (7, 1), (20, 3), (MASTER_SECTORS - 1, 1)])
@pytest.mark.parametrize("command", [0x30, 0x31])
def test_write_sectors(
    ctx: FakeContext,
    ide: IdeController,
    master: MemoryBlockDevice,
    size: int,
    lba: int,
    count: int,
    command: int,
) -> None:
    data = [pattern(n, 0xA0) for n in range(count)]
    issue(ide, command, lba, count)
    assert not ctx.level(IRQ)  # no interrupt before the first block
    for n in range(count):
        assert inb(ide, STATUS) == 0x58
        write_block(ide, data[n], size)
        assert master.read_sectors(lba + n, 1) == data[n]  # stored with its last word
        if n + 1 < count:
            assert master.read_sectors(lba + n + 1, 1) == pattern(lba + n + 1, 0)
        assert ctx.level(IRQ), n  # next block requested, or the command complete
    assert inb(ide, STATUS) == 0x50
    assert not ctx.level(IRQ)
    assert len(ctx.rises(IRQ)) == count
    if lba:
        assert master.read_sectors(lba - 1, 1) == pattern(lba - 1, 0)


# -- READ MULTIPLE, WRITE MULTIPLE, SET MULTIPLE MODE ---------------------------------------

READ_MULTIPLE, WRITE_MULTIPLE, SET_MULTIPLE = 0xC4, 0xC5, 0xC6


def set_multiple(ide: IdeController, count: int) -> int:
    """SET MULTIPLE MODE; the Status it ends with."""
    outb(ide, SECTOR_COUNT, count)
    outb(ide, COMMAND, SET_MULTIPLE)
    return inb(ide, STATUS)


@pytest.mark.parametrize("size", [2, 4])
@pytest.mark.parametrize(("multiple", "count"), [(16, 16), (16, 5), (4, 10), (2, 7), (1, 3)])
def test_read_multiple_drq_blocks(
    ctx: FakeContext, ide: IdeController, size: int, multiple: int, count: int
) -> None:
    if multiple != 16:
        assert set_multiple(ide, multiple) == 0x50
    lba = 40
    before = len(ctx.rises(IRQ))  # SET MULTIPLE MODE's own interrupt
    issue(ide, READ_MULTIPLE, lba, count)
    got = b""
    blocks = 0
    while len(got) < count * 512:
        assert ctx.level(IRQ), blocks  # one interrupt per DRQ block
        assert inb(ide, ALT_STATUS) == 0x58
        assert ctx.level(IRQ)  # Alternate Status does not acknowledge it
        assert inb(ide, STATUS) == 0x58
        assert not ctx.level(IRQ)
        in_block = min(multiple, count - blocks * multiple)
        for _ in range(in_block):
            got += read_block(ide, size)
        blocks += 1
    assert got == b"".join(pattern(lba + n, 0) for n in range(count))
    assert inb(ide, STATUS) == 0x50
    assert len(ctx.rises(IRQ)) - before == blocks == -(-count // multiple)


@pytest.mark.parametrize("size", [2, 4])
@pytest.mark.parametrize(("multiple", "count"), [(16, 3), (4, 10), (8, 8)])
def test_write_multiple_drq_blocks(
    ctx: FakeContext,
    ide: IdeController,
    master: MemoryBlockDevice,
    size: int,
    multiple: int,
    count: int,
) -> None:
    assert set_multiple(ide, multiple) == 0x50
    lba = 100
    data = [pattern(n, 0x3C) for n in range(count)]
    before = len(ctx.rises(IRQ))
    issue(ide, WRITE_MULTIPLE, lba, count)
    done = 0
    blocks = 0
    while done < count:
        assert inb(ide, STATUS) == 0x58
        in_block = min(multiple, count - done)
        for n in range(in_block):
            assert not ctx.level(IRQ)
            write_block(ide, data[done + n], size)
            if n + 1 < in_block:  # stored only when the whole block is in
                assert master.read_sectors(lba + done + n, 1) == pattern(lba + done + n, 0)
        done += in_block
        blocks += 1
        assert master.read_sectors(lba, done) == b"".join(data[:done])
        assert ctx.level(IRQ)
    assert inb(ide, STATUS) == 0x50
    assert len(ctx.rises(IRQ)) - before == blocks


@pytest.mark.parametrize("count", [3, 5, 32, 17])
def test_set_multiple_mode_refuses_bad_counts(ide: IdeController, count: int) -> None:
    assert set_multiple(ide, count) == 0x51
    assert inb(ide, ERROR) == 0x04
    assert identify_words(ide)[59] == 0x0110  # unchanged


def test_multiple_disabled_aborts_read_and_write_multiple(ide: IdeController) -> None:
    assert set_multiple(ide, 0) == 0x50
    assert identify_words(ide)[59] == 0
    for command in (READ_MULTIPLE, WRITE_MULTIPLE):
        issue(ide, command, 0, 2)
        assert (inb(ide, STATUS), inb(ide, ERROR)) == (0x51, 0x04)
    assert set_multiple(ide, 8) == 0x50
    assert identify_words(ide)[59] == 0x0108


def test_nien_polled_multiple_read_as_a_driver_without_interrupts(
    ctx: FakeContext, ide: IdeController
) -> None:
    outb(ide, DEVICE_CONTROL, 0x02)
    issue(ide, READ_MULTIPLE, 3, 20)
    got = b""
    while inb(ide, ALT_STATUS) & 0x08:
        got += read_block(ide, 4)
    assert got == b"".join(pattern(3 + n, 0) for n in range(20))
    assert ctx.rises(IRQ) == []


@pytest.mark.parametrize("size", [2, 4])
def test_sector_count_zero_means_256(
    ctx: FakeContext, ide: IdeController, master: MemoryBlockDevice, size: int
) -> None:
    issue(ide, READ_SECTORS, 3, 0)
    for n in range(256):
        inb(ide, STATUS)
        assert read_block(ide, size) == pattern(3 + n, 0)
    assert inb(ide, STATUS) == 0x50
    assert len(ctx.rises(IRQ)) == 256

    issue(ide, WRITE_SECTORS, 40, 0)
    for n in range(256):
        assert inb(ide, STATUS) == 0x58, n
        write_block(ide, pattern(n, 0x33), size)
    assert inb(ide, STATUS) == 0x50
    assert master.read_sectors(40, 256) == b"".join(pattern(n, 0x33) for n in range(256))


def test_mixed_16_and_32_bit_reads_and_byte_access(ide: IdeController) -> None:
    issue(ide, READ_SECTORS, 2, 2)
    expected = pattern(2, 0) + pattern(3, 0)
    got = bytearray()
    got += ide.io_read(DATA, 2).to_bytes(2, "little")
    for _ in range(127):
        got += ide.io_read(DATA, 4).to_bytes(4, "little")  # the last one straddles blocks
    assert ide.io_read(DATA, 1) == expected[len(got)]  # a byte access moves a whole word
    got += expected[len(got) : len(got) + 2]
    while len(got) < 1024:
        got += ide.io_read(DATA, 2).to_bytes(2, "little")
    assert bytes(got) == expected
    assert inb(ide, STATUS) == 0x50


def test_chs_addressing(ide: IdeController) -> None:
    # Default translation, 16 heads x 63 sectors: C0/H2/S5 is LBA 2 * 63 + 4.
    outb(ide, DEVICE, 0xA2)
    outb(ide, SECTOR_COUNT, 1)
    outb(ide, LBA_LOW, 5)
    outb(ide, LBA_MID, 0)
    outb(ide, LBA_HIGH, 0)
    outb(ide, COMMAND, READ_SECTORS)
    assert inb(ide, STATUS) == 0x58
    assert read_block(ide) == pattern(130, 0)
    # INITIALIZE DEVICE PARAMETERS: 4 heads (Device bits 3-0 + 1), 8 sectors per track.
    outb(ide, DEVICE, 0xA3)
    outb(ide, SECTOR_COUNT, 8)
    outb(ide, COMMAND, 0x91)
    assert inb(ide, STATUS) == 0x50
    assert identify_words(ide)[54:59] == [9, 4, 8, 288, 0]  # current CHS, capacity
    # C2/H1/S3 is LBA (2 * 4 + 1) * 8 + 2.
    outb(ide, DEVICE, 0xA1)
    outb(ide, SECTOR_COUNT, 1)
    outb(ide, LBA_LOW, 3)
    outb(ide, LBA_MID, 2)
    outb(ide, COMMAND, READ_SECTORS)
    assert inb(ide, STATUS) == 0x58
    assert read_block(ide) == pattern(74, 0)


@pytest.mark.parametrize("command", [0xEF, 0xE7, 0x91])  # SET FEATURES, FLUSH CACHE, IDP
def test_non_data_commands_complete_with_an_interrupt(
    ctx: FakeContext, ide: IdeController, command: int
) -> None:
    outb(ide, FEATURES, 0x03)
    outb(ide, SECTOR_COUNT, 0x0C)
    outb(ide, DEVICE, 0xAF)
    outb(ide, COMMAND, command)
    assert ctx.level(IRQ)
    assert (inb(ide, STATUS), inb(ide, ERROR)) == (0x50, 0x00)
    assert not ctx.level(IRQ)


def test_a_new_command_ends_the_transfer_in_progress(ide: IdeController) -> None:
    issue(ide, READ_SECTORS, 0, 4)
    ide.io_read(DATA, 2)
    issue(ide, READ_SECTORS, 9, 1)
    assert read_block(ide) == pattern(9, 0)
    assert inb(ide, STATUS) == 0x50


# -- master and slave ---------------------------------------------------------------------


@pytest.mark.parametrize(("drive", "salt"), [(0, 0), (1, 0x55)])
def test_drive_select(ide: IdeController, drive: int, salt: int) -> None:
    issue(ide, READ_SECTORS, 4, 1, drive=drive)
    assert inb(ide, STATUS) == 0x58
    assert read_block(ide) == pattern(4, salt)
    words = identify_words(ide, drive=drive)
    assert words[60] == (MASTER_SECTORS, SLAVE_SECTORS)[drive]


def test_each_drive_keeps_its_own_transfer(ide: IdeController) -> None:
    issue(ide, READ_SECTORS, 1, 1, drive=0)
    issue(ide, WRITE_SECTORS, 2, 1, drive=1)
    outb(ide, DEVICE, 0xE0)  # back to the master, its block still waiting
    assert inb(ide, STATUS) == 0x58
    assert read_block(ide) == pattern(1, 0)
    assert inb(ide, STATUS) == 0x50
    outb(ide, DEVICE, 0xF0)
    assert inb(ide, STATUS) == 0x58  # the slave still wants its sector


@pytest.mark.parametrize("absent", [0, 1])
def test_absent_drive(
    ctx: FakeContext, master: MemoryBlockDevice, slave: MemoryBlockDevice, absent: int
) -> None:
    disks: list[MemoryBlockDevice | None] = [master, slave]
    disks[absent] = None
    ide = IdeController(ctx, disks[0], disks[1])
    outb(ide, DEVICE, 0xA0 | absent << 4)
    # An absent slave reads 0x00; an absent master beside a slave reads DRDY|DSC, as
    # QEMU's (xv6 waits for the master's DRDY before it probes the slave).
    status = 0x50 if absent == 0 else 0x00
    assert (inb(ide, STATUS), inb(ide, ALT_STATUS), inb(ide, ERROR)) == (status, status, 0)
    outb(ide, SECTOR_COUNT, 0x55)
    assert inb(ide, SECTOR_COUNT) == 0x55  # the present drive answers for the registers
    for command in (IDENTIFY, READ_SECTORS, 0x00):
        outb(ide, COMMAND, command)  # ignored
        assert inb(ide, STATUS) == status
        assert ide.io_read(DATA, 2) == 0
    assert ctx.irq_calls == []
    outb(ide, DEVICE, 0xA0 | (1 - absent) << 4)
    assert inb(ide, STATUS) == 0x50  # the other drive saw nothing


def test_no_drive_at_all_reads_zero(ctx: FakeContext) -> None:
    ide = IdeController(ctx, None, None)
    outb(ide, SECTOR_COUNT, 0x55)
    assert [inb(ide, port) for port in range(ERROR, STATUS + 1)] == [0] * 7
    assert inb(ide, ALT_STATUS) == 0


# -- interrupts ---------------------------------------------------------------------------


def test_nien_masks_intrq_but_keeps_it_pending(ctx: FakeContext, ide: IdeController) -> None:
    outb(ide, DEVICE_CONTROL, 0x02)  # nIEN
    issue(ide, READ_SECTORS, 0, 2)
    assert ctx.irq_calls == []
    outb(ide, DEVICE_CONTROL, 0x00)
    assert ctx.level(IRQ)  # pending all along
    outb(ide, DEVICE_CONTROL, 0x02)
    assert not ctx.level(IRQ)
    assert inb(ide, STATUS) == 0x58  # acknowledged
    outb(ide, DEVICE_CONTROL, 0x00)
    assert not ctx.level(IRQ)
    read_block(ide)  # the second block: a new interrupt
    assert ctx.level(IRQ)
    assert len(ctx.rises(IRQ)) == 2


def test_intrq_follows_the_selected_drive(ctx: FakeContext, ide: IdeController) -> None:
    issue(ide, IDENTIFY, drive=0)
    assert ctx.level(IRQ)
    outb(ide, DEVICE, 0xB0)  # the slave has no interrupt pending
    assert not ctx.level(IRQ)
    outb(ide, DEVICE, 0xA0)
    assert ctx.level(IRQ)


def test_a_command_written_while_intrq_is_high_raises_a_new_edge(
    ctx: FakeContext, ide: IdeController
) -> None:
    issue(ide, READ_SECTORS, 0, 1)
    assert len(ctx.rises(IRQ)) == 1
    read_block(ide)  # the data is read, but Status is not: INTRQ stays high
    assert ctx.level(IRQ)
    issue(ide, READ_SECTORS, 1, 1)  # an edge-triggered IOAPIC needs low, then high
    assert len(ctx.rises(IRQ)) == 2


def test_writing_command_negates_intrq(ctx: FakeContext, ide: IdeController) -> None:
    issue(ide, 0xE7)
    assert ctx.level(IRQ)
    issue(ide, WRITE_SECTORS, 0, 1)  # data-out: no interrupt before the first block
    assert not ctx.level(IRQ)


# -- reset --------------------------------------------------------------------------------


def test_soft_reset(ctx: FakeContext, ide: IdeController) -> None:
    issue(ide, READ_SECTORS, 8, 3, drive=1)
    assert ctx.level(IRQ)
    outb(ide, SECTOR_COUNT, 0x77)
    outb(ide, DEVICE_CONTROL, 0x04)  # SRST
    assert not ctx.level(IRQ)
    assert inb(ide, STATUS) == 0x80  # BSY while SRST is held
    outb(ide, COMMAND, IDENTIFY)  # ignored while busy
    outb(ide, DEVICE_CONTROL, 0x00)
    assert [inb(ide, port) for port in range(ERROR, STATUS + 1)] == [1, 1, 1, 0, 0, 0, 0x50]
    assert ide.io_read(DATA, 2) == 0  # the transfer is gone
    outb(ide, DEVICE, 0xB0)
    assert (inb(ide, STATUS), inb(ide, ERROR)) == (0x50, 0x01)
    assert not ctx.level(IRQ)  # no interrupt after a soft reset


def test_reset_lowers_the_line(ctx: FakeContext, ide: IdeController) -> None:
    issue(ide, IDENTIFY)
    ide.reset()
    assert not ctx.level(IRQ)
    assert inb(ide, STATUS) == 0x50


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [0x00, 0x10, 0x90, 0xA1, 0xC8, 0xFF])
def test_unknown_command_aborts(ctx: FakeContext, ide: IdeController, command: int) -> None:
    outb(ide, COMMAND, command)
    assert ctx.level(IRQ)
    assert (inb(ide, STATUS), inb(ide, ERROR)) == (0x51, 0x04)  # ERR, ABRT


@pytest.mark.parametrize("command", [READ_SECTORS, WRITE_SECTORS])
@pytest.mark.parametrize(
    ("lba", "count"),
    [(MASTER_SECTORS, 1), (MASTER_SECTORS - 1, 2), (MASTER_SECTORS - 255, 0), (0x0FFFFFFF, 1)],
)
def test_beyond_the_end_is_idnf(
    ctx: FakeContext,
    ide: IdeController,
    master: MemoryBlockDevice,
    command: int,
    lba: int,
    count: int,
) -> None:
    before = bytes(master.data)
    issue(ide, command, lba, count)
    assert ctx.level(IRQ)
    assert (inb(ide, STATUS), inb(ide, ERROR)) == (0x51, 0x10)  # ERR, IDNF
    assert ide.io_read(DATA, 2) == 0
    write_block(ide, bytes(512))
    assert bytes(master.data) == before


@pytest.mark.parametrize(("head", "sector"), [(0, 0), (0, 64), (16, 1)])
def test_chs_outside_the_translation_is_idnf(ide: IdeController, head: int, sector: int) -> None:
    outb(ide, DEVICE, 0xA0 | head & 0x0F)
    outb(ide, LBA_LOW, sector)
    if head >= 16:
        outb(ide, DEVICE, 0xAF)  # 16 heads: head 15 is the last; make 15 invalid
        outb(ide, SECTOR_COUNT, 1)
        outb(ide, COMMAND, 0x91)  # INITIALIZE DEVICE PARAMETERS: 16 heads, 1 sector/track
        outb(ide, LBA_LOW, 2)
    outb(ide, SECTOR_COUNT, 1)
    outb(ide, COMMAND, READ_SECTORS)
    assert (inb(ide, STATUS), inb(ide, ERROR)) == (0x51, 0x10)


def test_a_good_command_clears_error(ide: IdeController) -> None:
    outb(ide, COMMAND, 0x00)
    issue(ide, READ_SECTORS, 0, 1)
    assert (inb(ide, STATUS), inb(ide, ERROR)) == (0x58, 0x00)


def test_memory_block_device_bounds() -> None:
    disk = MemoryBlockDevice(bytearray(1536))
    with pytest.raises(ValueError, match="outside"):
        disk.read_sectors(2, 2)
    with pytest.raises(ValueError, match="whole number"):
        disk.write_sectors(0, b"x")
    with pytest.raises(ValueError, match="outside"):
        disk.write_sectors(3, bytes(512))


# -- snapshots ----------------------------------------------------------------------------

Script = Callable[[IdeController], object]


def mid_identify(ide: IdeController) -> None:
    issue(ide, IDENTIFY, drive=1)
    for _ in range(100):
        ide.io_read(DATA, 2)


def mid_read(ide: IdeController) -> None:
    issue(ide, READ_SECTORS, 10, 3)
    inb(ide, STATUS)
    read_block(ide, 4)
    for _ in range(30):
        ide.io_read(DATA, 4)


def mid_write(ide: IdeController) -> None:
    outb(ide, DEVICE_CONTROL, 0x02)
    issue(ide, WRITE_SECTORS, 50, 3)
    write_block(ide, pattern(1, 0x11))
    for i in range(77):
        ide.io_write(DATA, 2, i * 0x0101)


def in_reset(ide: IdeController) -> None:
    issue(ide, READ_SECTORS, 0, 2)
    outb(ide, DEVICE_CONTROL, 0x06)


def after_error(ide: IdeController) -> None:
    outb(ide, DEVICE, 0xB0)
    outb(ide, COMMAND, 0x42)


def after_chs_setup(ide: IdeController) -> None:
    outb(ide, DEVICE, 0xA3)
    outb(ide, SECTOR_COUNT, 8)
    outb(ide, COMMAND, 0x91)


def mid_read_multiple(ide: IdeController) -> None:
    outb(ide, SECTOR_COUNT, 4)
    outb(ide, COMMAND, 0xC6)
    issue(ide, 0xC4, 60, 10)
    read_block(ide, 4)
    for _ in range(70):
        ide.io_read(DATA, 4)


def mid_write_multiple(ide: IdeController) -> None:
    issue(ide, 0xC5, 70, 20)
    for n in range(17):
        write_block(ide, pattern(n, 0x77), 4)
    for i in range(9):
        ide.io_write(DATA, 4, i * 0x01010101)


PREFIXES = [
    mid_identify,
    mid_read,
    mid_write,
    in_reset,
    after_error,
    after_chs_setup,
    mid_read_multiple,
    mid_write_multiple,
]


def finish(ide: IdeController) -> list[int]:
    """Whatever the state, drain it the same way on both twins; what the guest sees."""
    seen = []
    outb(ide, DEVICE_CONTROL, 0x00)
    for _ in range(4):
        seen.append(inb(ide, ALT_STATUS))
        seen.append(inb(ide, STATUS))
        for _ in range(300):
            seen.append(ide.io_read(DATA, 4))
            ide.io_write(DATA, 2, 0xBEEF)
    issue(ide, READ_SECTORS, 50, 3)
    for _ in range(3):
        seen.append(inb(ide, STATUS))
        seen += list(read_block(ide))
    seen += identify_words(ide)
    return seen


def twins(
    new_ctx: Callable[[int], FakeContext], prefix: Script
) -> tuple[tuple[FakeContext, IdeController, list[MemoryBlockDevice]], ...]:
    """Rig A runs `prefix`; rig B is restored from A's state and a copy of A's disks."""
    ctx_a = new_ctx(0)
    disks_a = [disk(MASTER_SECTORS, 0), disk(SLAVE_SECTORS, 0x55)]
    ide_a = IdeController(ctx_a, disks_a[0], disks_a[1])
    ide_a.reset()
    prefix(ide_a)
    saved = ide_a.save_state()
    frozen = copy.deepcopy(saved)

    ctx_b = new_ctx(ctx_a.now)
    disks_b = [MemoryBlockDevice(bytearray(d.data)) for d in disks_a]  # the overlay, restored
    ide_b = IdeController(ctx_b, disks_b[0], disks_b[1])
    ide_b.reset()
    ctx_b.irq_calls.clear()
    ide_b.load_state(copy.deepcopy(saved))
    assert ide_b.save_state() == saved  # save -> load -> save
    assert saved == frozen  # saving hands out no live references
    assert ctx_b.irq_calls == []  # loading drives no line
    return (ctx_a, ide_a, disks_a), (ctx_b, ide_b, disks_b)


@pytest.mark.parametrize("prefix", PREFIXES, ids=[p.__name__ for p in PREFIXES])
def test_restored_twin_behaves_the_same(
    new_ctx: Callable[[int], FakeContext], prefix: Script
) -> None:
    (ctx_a, ide_a, disks_a), (ctx_b, ide_b, disks_b) = twins(new_ctx, prefix)
    mark = len(ctx_a.irq_calls)
    assert finish(ide_a) == finish(ide_b)
    assert ctx_a.irq_calls[mark:] == ctx_b.irq_calls
    assert [d.data for d in disks_a] == [d.data for d in disks_b]
    assert ide_a.save_state() == ide_b.save_state()


def test_state_has_every_register_and_the_buffer(new_ctx: Callable[[int], FakeContext]) -> None:
    (_, ide_a, _), _ = twins(new_ctx, mid_read)
    state = ide_a.save_state()
    drives = state["drives"]
    assert isinstance(drives, list) and drives[1] is not None
    master = drives[0]
    assert isinstance(master, dict)
    assert master["buffer"] == pattern(11, 0)
    assert (master["pos"], master["phase"], master["lba"], master["remaining"]) == (
        120,
        "data-in",
        12,
        1,
    )


def test_load_refuses_other_drives(ctx: FakeContext, master: MemoryBlockDevice) -> None:
    state = IdeController(ctx, master, master).save_state()
    with pytest.raises(MachineError, match="ide0"):
        IdeController(ctx, master, None).load_state(state)


Op = tuple[str, int, int, int]

ops = st.one_of(
    st.tuples(
        st.just("out"),
        st.sampled_from([*range(0x1F1, 0x1F8), 0x3F6]),
        st.sampled_from([0, 1, 2, 3, 0x20, 0x30, 0x91, 0xA0, 0xB0, 0xE0, 0xE7, 0xEC, 0xF0]),
        st.just(1),
    ),
    st.tuples(
        st.just("in"), st.sampled_from([*range(0x1F1, 0x1F8), 0x3F6]), st.just(0), st.just(1)
    ),
    st.tuples(st.just("data_in"), st.just(DATA), st.integers(1, 300), st.sampled_from([2, 4])),
    st.tuples(st.just("data_out"), st.just(DATA), st.integers(1, 300), st.sampled_from([2, 4])),
)


def run(ide: IdeController, script: list[Op]) -> list[int]:
    seen = []
    for kind, port, value, size in script:
        match kind:
            case "out":
                outb(ide, port, value)
            case "in":
                seen.append(inb(ide, port))
            case "data_in":
                seen += [ide.io_read(DATA, size) for _ in range(value)]
            case _:
                for i in range(value):
                    ide.io_write(DATA, size, i * 0x01020304 & ((1 << 8 * size) - 1))
    return seen


@settings(max_examples=60, deadline=None)
@given(st.lists(ops, max_size=40), st.lists(ops, max_size=40))
def test_random_scripts_restore_identically(prefix: list[Op], suffix: list[Op]) -> None:
    (ctx_a, ide_a, disks_a), (ctx_b, ide_b, disks_b) = twins(
        FakeContext, lambda ide: run(ide, prefix)
    )
    mark = len(ctx_a.irq_calls)
    assert run(ide_a, suffix) == run(ide_b, suffix)
    assert ctx_a.irq_calls[mark:] == ctx_b.irq_calls
    assert [d.data for d in disks_a] == [d.data for d in disks_b]
    assert ide_a.save_state() == ide_b.save_state()
    assert ctx_a.level(IRQ) == ide_a.irq_level()
