"""ATA (IDE) PIO disk controller: one channel with a master and a slave drive.

Owns the channel's registers, named as in ATA/ATAPI-6 (T13/1410D), "Register
description": the Command Block (Data, Error/Features, Sector Count, LBA Low, LBA Mid,
LBA High, Device, Status/Command at base+0..7) and the Control Block (Alternate
Status/Device Control at `ctrl`); each drive's Status, Error and 512-byte sector buffer;
the PIO data-in and data-out protocols of the commands below; INTRQ and nIEN; soft reset.
It does not know what stores the sectors: a `BlockDevice` (the machine plugs in an
overlay, never the user's file; its contents are not part of `save_state`).  Nor does it
know the PIC: INTRQ is a level on `ctx.set_irq(irq, ...)`.

Timing model: every command completes at once, in the OUT that writes the Command
register, so BSY is never seen (except while the guest holds SRST).  A read or IDENTIFY
has its first DRQ block in the buffer with DRQ set; a write has DRQ set for the first
block.  Each further DRQ block of a read is loaded when the previous one has been read
out; each block of a write reaches the `BlockDevice` when its last word is written.  A
DRQ block is one sector, or for READ/WRITE MULTIPLE up to the multiple count sectors.
INTRQ rises for each DRQ block of a read, for each block of a write after the first and
at the end of a write; reading Status (not Alternate Status) negates it.

Commands: IDENTIFY DEVICE (0xEC), READ SECTORS (0x20, 0x21), WRITE SECTORS (0x30, 0x31),
READ MULTIPLE (0xC4), WRITE MULTIPLE (0xC5), SET MULTIPLE MODE (0xC6: 0 disables, else a
power of two up to `MAX_MULTIPLE`, the power-on setting as in QEMU), SET FEATURES (0xEF,
every subcommand accepted), INITIALIZE DEVICE PARAMETERS (0x91), FLUSH CACHE (0xE7);
any other command is aborted (ERR, ABRT).  Addresses are LBA28 or CHS
(through the translation set by INITIALIZE DEVICE PARAMETERS, default 16 heads and 63
sectors per track); a range past the end of the disk fails with IDNF before any transfer.

Simplifications: the Command Block registers other than Status and Error are shared by
both drives (the guest writes them to both drives at once anyway) and commands do not
update them.  A drive that is absent reads 0x00 in Status, Alternate Status and Error and
ignores commands, except that an absent master beside a present slave reads Status
0x50 (DRDY, DSC), as QEMU's does: kernels wait for the master's DRDY before probing the
slave.  With no drive at all every Command Block read gives 0x00 (as QEMU).  A
machine without disks should leave the controller out: the bus's floating 0xFF then says
"no controller".  Data port reads outside a PIO data-in transfer give 0, writes outside a
data-out transfer are ignored.  Byte accesses to the Data register move a whole word.

Reference: ATA/ATAPI-6, "Command descriptions" and "Protocol" (PIO data-in, PIO
data-out, non-data, software reset); QEMU hw/ide/core.c.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from types import MappingProxyType
from typing import Protocol, assert_never

from rdebug.errors import MachineError
from rdebug.machine.datawindow import DataWindow
from rdebug.machine.devices.base import (
    BOOL,
    BUFFER,
    INT,
    Device,
    DeviceContext,
    Field,
    State,
    Stateful,
    StateValue,
    enum_codec,
    fields,
)
from rdebug.machine.portregs import Access, ByteAttribute, PortRegister, RegisterBytes

SECTOR_SIZE = 512
#: Model number in IDENTIFY DEVICE words 27-46 (padded with spaces to 40 characters).
MODEL = "RDEBUG HARDDISK"
#: Firmware revision in IDENTIFY DEVICE words 23-26.
FIRMWARE = "1.0"
#: Default CHS translation (IDENTIFY words 3 and 6), as BIOSes assume for big disks.
DEFAULT_HEADS = 16
DEFAULT_SECTORS_PER_TRACK = 63
#: Largest sector count an LBA28 command can address (IDENTIFY words 60-61).
LBA28_SECTORS = 0x0FFF_FFFF
#: Most sectors per DRQ block of READ/WRITE MULTIPLE (IDENTIFY word 47), and the
#: power-on multiple count (QEMU's MAX_MULT_SECTORS: guests use READ MULTIPLE unset).
MAX_MULTIPLE = 16

#: Device names of the standard channel bases.
CHANNELS: Mapping[int, str] = MappingProxyType({0x1F0: "ide0", 0x170: "ide1"})

# Command Block register offsets from `base`.
_DATA = 0
_ERROR_FEATURES = 1
_SECTOR_COUNT = 2
_LBA_LOW = 3
_LBA_MID = 4
_LBA_HIGH = 5
_DEVICE = 6
_STATUS_COMMAND = 7

# Status register bits.
_BSY = 0x80
_DRDY = 0x40
_DSC = 0x10  # device seek complete (obsolete in ATA-6, still set by drives)
_DRQ = 0x08
_ERR = 0x01
_READY = _DRDY | _DSC
# Error register bits.
_IDNF = 0x10
_ABRT = 0x04
#: Error register after a reset: diagnostic code 01h, "device passed".
_DIAGNOSTIC_PASSED = 0x01
# Device register bits.
_DEV_LBA = 0x40
_DEV_DEV = 0x10  # drive select: 0 master, 1 slave
# Device Control register bits.
_HOB = 0x80
_SRST = 0x04
_NIEN = 0x02


class AtaCommand(Enum):
    """The Command register values this controller executes."""

    READ_SECTORS = 0x20
    READ_SECTORS_NO_RETRY = 0x21
    WRITE_SECTORS = 0x30
    WRITE_SECTORS_NO_RETRY = 0x31
    INITIALIZE_DEVICE_PARAMETERS = 0x91
    READ_MULTIPLE = 0xC4
    WRITE_MULTIPLE = 0xC5
    SET_MULTIPLE_MODE = 0xC6
    FLUSH_CACHE = 0xE7
    IDENTIFY_DEVICE = 0xEC
    SET_FEATURES = 0xEF


class Phase(Enum):
    """Where a drive is in its command's protocol."""

    IDLE = "idle"
    DATA_IN = "data-in"  # PIO data-in: the guest reads the buffer (DRQ set)
    DATA_OUT = "data-out"  # PIO data-out: the guest fills the buffer (DRQ set)


class BlockDevice(Protocol):
    """The storage behind a drive, in 512-byte sectors (`lba` from 0)."""

    @property
    def sector_count(self) -> int: ...

    def read_sectors(self, lba: int, count: int) -> bytes: ...

    def write_sectors(self, lba: int, data: bytes) -> None: ...


class MemoryBlockDevice:
    """A `BlockDevice` on a bytearray (a partial last sector is not part of the disk).

    >>> disk = MemoryBlockDevice(bytearray(1024))
    >>> disk.sector_count
    2
    >>> disk.write_sectors(1, b"\\xab" * 512)
    >>> disk.read_sectors(0, 2)[510:514].hex()
    '0000abab'
    """

    def __init__(self, data: bytearray) -> None:
        self.data = data

    @property
    def sector_count(self) -> int:
        return len(self.data) // SECTOR_SIZE

    def read_sectors(self, lba: int, count: int) -> bytes:
        self._check(lba, count)
        return bytes(self.data[lba * SECTOR_SIZE : (lba + count) * SECTOR_SIZE])

    def write_sectors(self, lba: int, data: bytes) -> None:
        if len(data) % SECTOR_SIZE:
            raise ValueError(f"{len(data)} bytes is not a whole number of sectors")
        self._check(lba, len(data) // SECTOR_SIZE)
        self.data[lba * SECTOR_SIZE : lba * SECTOR_SIZE + len(data)] = data

    def _check(self, lba: int, count: int) -> None:
        if lba < 0 or count < 0 or lba + count > self.sector_count:
            raise ValueError(
                f"sectors {lba}..{lba + count - 1} outside a disk of {self.sector_count} sectors"
            )


class _Drive(Stateful):
    """One drive's own registers (Status, Error), its sector buffer and its command."""

    def __init__(self, disk: BlockDevice, index: int) -> None:
        self.disk = disk
        self.index = index  # 0 master, 1 slave
        self.power_on()

    def power_on(self) -> None:
        self.heads = DEFAULT_HEADS
        self.sectors_per_track = DEFAULT_SECTORS_PER_TRACK
        self.multiple = MAX_MULTIPLE  # sectors per DRQ block of READ/WRITE MULTIPLE
        self.soft_reset()

    def soft_reset(self) -> None:
        """After a reset: ready, diagnostic code in Error, no command (CHS translation kept)."""
        self.status = _READY
        self.error = _DIAGNOSTIC_PASSED
        self.buffer = bytearray(SECTOR_SIZE)
        self.pos = 0  # next byte of the buffer the guest reads or writes
        self.phase = Phase.IDLE
        self.lba = 0  # next sector to load (data-in) or to store (data-out)
        self.remaining = 0  # sectors still to load after the buffer (data-in) or to store
        self.block_size = SECTOR_SIZE  # bytes in the current DRQ block
        self.per_block = 1  # sectors per DRQ block of the command in progress
        self.intrq = False  # interrupt pending

    state_fields = (
        *fields(INT, "status", "error"),
        *fields(BUFFER, "buffer"),
        *fields(INT, "pos"),
        Field("phase", enum_codec(Phase)),
        *fields(INT, "lba", "remaining"),
        *fields(BOOL, "intrq"),
        *fields(INT, "heads", "sectors_per_track"),
        # (absent from snapshots made before READ/WRITE MULTIPLE: their defaults)
        Field("multiple", INT, default=MAX_MULTIPLE, required=False),
        Field("block_size", INT, default=SECTOR_SIZE, required=False),
        Field("per_block", INT, default=1, required=False),
    )

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        super().load_state(state)
        if not 0 < self.block_size <= MAX_MULTIPLE * SECTOR_SIZE or self.block_size % 512:
            raise TypeError("malformed ide device state: block size")
        if len(self.buffer) < self.block_size or self.pos > self.block_size:
            raise TypeError("malformed ide device state: buffer")


class IdeController(Device):
    """One IDE channel (primary: 0x1F0-0x1F7, 0x3F6, IRQ14) with up to two drives.

    The device is named after its channel ("ide0" for 0x1F0, "ide1" for 0x170), else
    "ide@0x...".
    """

    # The Command Block's registers (shared by both drives) and Device Control: in
    # `registers`, which the native port hooks read and write (see `port_registers`).
    features = ByteAttribute(0)
    sector_count = ByteAttribute(1)
    lba_low = ByteAttribute(2)
    lba_mid = ByteAttribute(3)
    lba_high = ByteAttribute(4)
    device = ByteAttribute(5)
    device_control = ByteAttribute(6)

    def __init__(
        self,
        ctx: DeviceContext,
        master: BlockDevice | None,
        slave: BlockDevice | None,
        base: int = 0x1F0,
        ctrl: int = 0x3F6,
        irq: int = 14,
    ) -> None:
        super().__init__(ctx)
        self.registers = RegisterBytes(7)
        self.base = base
        self.ctrl = ctrl
        self.irq = irq
        self.name = CHANNELS.get(base, f"ide@{base:#x}")
        self.ports = (range(base, base + 8), range(ctrl, ctrl + 1))
        self.drives = tuple(
            None if disk is None else _Drive(disk, index)
            for index, disk in enumerate((master, slave))
        )
        self._irq_level = False
        #: the Data register while a PIO block is under way (see `_take_pos`)
        self._window = DataWindow(base)
        self._window_drive: _Drive | None = None
        self._registers: tuple[PortRegister, ...] | None = None
        self._init_registers()

    def data_windows(self) -> tuple[DataWindow, ...]:
        return (self._window,)

    def port_registers(self) -> tuple[PortRegister, ...]:
        """Features, Sector Count and the LBA registers: stores and (but Features, which
        reads as Error) read-back; the Device register read back, and written where the
        write keeps the drive selected (the same value); Device Control where the write
        changes nothing.  None without a drive (every register then reads 0)."""
        if self._registers is None:
            rw = Access.READ | Access.WRITE
            cells = self.registers
            base = self.base
            self._registers = (
                ()
                if all(d is None for d in self.drives)
                else (
                    PortRegister(base + 1, cells, 0, Access.WRITE),
                    *(PortRegister(base + i, cells, i - 1, rw) for i in range(2, 6)),
                    PortRegister(base + 6, cells, 5, Access.READ | Access.SAME),
                    PortRegister(self.ctrl, cells, 6, Access.SAME, wmask=_HOB | _SRST | _NIEN),
                )
            )
        return self._registers

    def _take_pos(self) -> None:
        """The block's position back from the window (the native port hooks move the
        words of a block but its last one): before the controller does anything."""
        if self._window.is_open and self._window_drive is not None:
            self._window_drive.pos = self._window.take_pos()

    def _open_window(self) -> None:
        """After the controller did something: open the window on the selected drive's
        block if one is under way, else close it."""
        drive = self.selected()
        if drive is None or drive.phase is Phase.IDLE:
            self._window.close()
            self._window_drive = None
            return
        out = drive.phase is Phase.DATA_OUT
        self._window.open(drive.buffer, drive.pos, drive.block_size, out)
        self._window_drive = drive

    def _init_registers(self) -> None:
        self.features = 0
        self._signature()
        self.device_control = 0
        for drive in self.drives:
            if drive is not None:
                drive.power_on()

    def _signature(self) -> None:
        """The Command Block after a reset: the ATA device signature, device 0 selected."""
        self.sector_count = 1
        self.lba_low = 1
        self.lba_mid = 0
        self.lba_high = 0
        self.device = 0

    def reset(self) -> None:
        self._init_registers()
        self._update_irq()
        self._open_window()

    # -- derived values ---------------------------------------------------------------------

    def selected(self) -> _Drive | None:
        """The drive the Device register's DEV bit selects, None when it is absent."""
        return self.drives[1 if self.device & _DEV_DEV else 0]

    @property
    def status(self) -> int:
        """The selected drive's Status register (0x00 when the drive is absent)."""
        drive = self.selected()
        if drive is None:
            return self._absent_status()
        return drive.status

    def _absent_status(self) -> int:
        """An absent drive's Status: 0x00, but DRDY|DSC for a master beside a slave."""
        master_selected = not self.device & _DEV_DEV
        return _READY if master_selected and self.drives[1] is not None else 0x00

    def irq_level(self) -> bool:
        """INTRQ: the selected drive has an interrupt pending and nIEN is clear."""
        drive = self.selected()
        return drive is not None and drive.intrq and not self.device_control & _NIEN

    # -- the guest's side -------------------------------------------------------------------

    def io_read(self, port: int, size: int) -> int:
        self._take_pos()
        try:
            return self._io_read(port, size)
        finally:
            self._open_window()

    def _io_read(self, port: int, size: int) -> int:
        if port == self.base:
            value = 0
            for i in range(2 if size == 4 else 1):
                value |= self._read_data() << (16 * i)
            self._update_irq()
            return value & ((1 << (8 * size)) - 1)
        if port == self.ctrl:
            # Alternate Status: Status without acknowledging the interrupt.
            return self.status | ((1 << (8 * size)) - 256)
        value = 0
        for i in range(size):
            value |= self._read_register(port - self.base + i) << (8 * i)
        return value

    def io_write(self, port: int, size: int, value: int) -> None:
        self._take_pos()
        try:
            self._io_write(port, size, value)
        finally:
            self._open_window()

    def _io_write(self, port: int, size: int, value: int) -> None:
        if port == self.base:
            for i in range(2 if size == 4 else 1):
                self._write_data((value >> (16 * i)) & 0xFFFF)
        elif port == self.ctrl:
            self._write_device_control(value & 0xFF)
        else:
            for i in range(size):
                self._write_register(port - self.base + i, (value >> (8 * i)) & 0xFF)
        self._update_irq()

    def _read_register(self, offset: int) -> int:
        if offset > _STATUS_COMMAND:
            return 0xFF  # past the Command Block: not ours
        if all(drive is None for drive in self.drives):
            return 0x00
        drive = self.selected()
        match offset:
            case 1:
                return 0 if drive is None else drive.error  # Error
            case 2:
                return self.sector_count
            case 3:
                return self.lba_low
            case 4:
                return self.lba_mid
            case 5:
                return self.lba_high
            case 6:
                return self.device
            case _:
                # Status: reading it acknowledges the interrupt (negates INTRQ).
                if drive is None:
                    return self._absent_status()
                drive.intrq = False
                self._update_irq()
                return drive.status

    def _write_register(self, offset: int, value: int) -> None:
        match offset:
            case 1:
                self.features = value
            case 2:
                self.sector_count = value
            case 3:
                self.lba_low = value
            case 4:
                self.lba_mid = value
            case 5:
                self.lba_high = value
            case 6:
                self.device = value
            case 7:
                self._write_command(value)
            case _:
                pass  # past the Command Block

    def _write_device_control(self, value: int) -> None:
        """Device Control: nIEN masks INTRQ; SRST held then released resets both drives."""
        was_resetting = bool(self.device_control & _SRST)
        self.device_control = value & (_HOB | _SRST | _NIEN)
        resetting = bool(value & _SRST)
        if resetting and not was_resetting:
            for drive in self.drives:
                if drive is not None:
                    drive.soft_reset()
                    drive.status = _BSY
        elif was_resetting and not resetting:
            for drive in self.drives:
                if drive is not None:
                    drive.soft_reset()
            self._signature()

    # -- the Data register ------------------------------------------------------------------

    def _read_data(self) -> int:
        """One word of a PIO data-in block; the last one ends the DRQ block."""
        drive = self.selected()
        if drive is None or drive.phase is not Phase.DATA_IN:
            return 0
        word = drive.buffer[drive.pos] | drive.buffer[drive.pos + 1] << 8
        drive.pos += 2
        if drive.pos >= drive.block_size:
            if drive.remaining:
                self._load_block(drive)
            else:
                drive.phase = Phase.IDLE
                drive.status = _READY
        return word

    def _write_data(self, word: int) -> None:
        """One word of a PIO data-out block; the last one stores the sector."""
        drive = self.selected()
        if drive is None or drive.phase is not Phase.DATA_OUT:
            return
        drive.buffer[drive.pos] = word & 0xFF
        drive.buffer[drive.pos + 1] = word >> 8
        drive.pos += 2
        if drive.pos >= drive.block_size:
            drive.disk.write_sectors(drive.lba, bytes(drive.buffer[: drive.block_size]))
            sectors = drive.block_size // SECTOR_SIZE
            drive.lba += sectors
            drive.remaining -= sectors
            drive.pos = 0
            if drive.remaining:
                self._next_out_block(drive)
                drive.status = _READY | _DRQ  # next DRQ block
            else:
                drive.phase = Phase.IDLE
                drive.status = _READY
            drive.intrq = True  # at each further DRQ block and at command completion

    def _load_block(self, drive: _Drive) -> None:
        """Start a PIO data-in block with the next sector(s); interrupt for it."""
        sectors = min(drive.per_block, drive.remaining)
        drive.buffer = bytearray(drive.disk.read_sectors(drive.lba, sectors))
        drive.block_size = sectors * SECTOR_SIZE
        drive.lba += sectors
        drive.remaining -= sectors
        drive.pos = 0
        drive.phase = Phase.DATA_IN
        drive.status = _READY | _DRQ
        drive.intrq = True

    def _next_out_block(self, drive: _Drive) -> None:
        """Size the next PIO data-out block."""
        drive.block_size = min(drive.per_block, drive.remaining) * SECTOR_SIZE
        if len(drive.buffer) < drive.block_size:
            drive.buffer = bytearray(drive.block_size)

    # -- commands ---------------------------------------------------------------------------

    def _write_command(self, value: int) -> None:
        """Command: executed by the selected drive, at once; a new command ends the old one."""
        drive = self.selected()
        if drive is None or drive.status & _BSY:
            return
        drive.intrq = False  # writing Command negates INTRQ: a new edge for this command
        self._update_irq()
        drive.phase = Phase.IDLE
        drive.pos = 0
        drive.block_size = SECTOR_SIZE
        drive.per_block = 1
        drive.error = 0
        try:
            command = AtaCommand(value)
        except ValueError:
            self._fail(drive, _ABRT)
            return
        match command:
            case AtaCommand.IDENTIFY_DEVICE:
                drive.buffer = bytearray(_identify_data(drive))
                drive.remaining = 0
                drive.phase = Phase.DATA_IN
                drive.status = _READY | _DRQ
                drive.intrq = True
            case AtaCommand.READ_SECTORS | AtaCommand.READ_SECTORS_NO_RETRY:
                if self._start_transfer(drive):
                    self._load_block(drive)
            case AtaCommand.WRITE_SECTORS | AtaCommand.WRITE_SECTORS_NO_RETRY:
                if self._start_transfer(drive):
                    self._start_data_out(drive)
            case AtaCommand.READ_MULTIPLE | AtaCommand.WRITE_MULTIPLE:
                if not drive.multiple:
                    self._fail(drive, _ABRT)  # multiple mode disabled
                elif self._start_transfer(drive):
                    drive.per_block = drive.multiple
                    if command is AtaCommand.READ_MULTIPLE:
                        self._load_block(drive)
                    else:
                        self._start_data_out(drive)
            case AtaCommand.SET_MULTIPLE_MODE:
                count = self.sector_count
                if count > MAX_MULTIPLE or count & (count - 1):
                    self._fail(drive, _ABRT)
                else:
                    drive.multiple = count
                    self._complete(drive)
            case AtaCommand.INITIALIZE_DEVICE_PARAMETERS:
                drive.heads = (self.device & 0x0F) + 1
                drive.sectors_per_track = self.sector_count
                self._complete(drive)
            case AtaCommand.SET_FEATURES | AtaCommand.FLUSH_CACHE:
                self._complete(drive)
            case _:
                assert_never(command)

    def _start_data_out(self, drive: _Drive) -> None:
        drive.phase = Phase.DATA_OUT
        self._next_out_block(drive)
        drive.status = _READY | _DRQ  # no interrupt for the first block

    def _start_transfer(self, drive: _Drive) -> bool:
        """Take the address and count from the Command Block; IDNF if out of the disk."""
        count = self.sector_count or 256
        lba = self._address(drive)
        if lba is None or lba + count > drive.disk.sector_count:
            self._fail(drive, _IDNF)
            return False
        drive.lba = lba
        drive.remaining = count
        return True

    def _address(self, drive: _Drive) -> int | None:
        """The first sector: LBA28 when the Device register's LBA bit is set, else CHS."""
        if self.device & _DEV_LBA:
            return (
                (self.device & 0x0F) << 24 | self.lba_high << 16 | self.lba_mid << 8 | self.lba_low
            )
        cylinder = self.lba_high << 8 | self.lba_mid
        head = self.device & 0x0F
        sector = self.lba_low
        if not 1 <= sector <= drive.sectors_per_track or head >= drive.heads:
            return None
        return (cylinder * drive.heads + head) * drive.sectors_per_track + sector - 1

    def _complete(self, drive: _Drive) -> None:
        """A non-data command ends well."""
        drive.status = _READY
        drive.intrq = True

    def _fail(self, drive: _Drive, error: int) -> None:
        """A command ends in error: ERR in Status, the reason in Error, an interrupt."""
        drive.phase = Phase.IDLE
        drive.status = _READY | _ERR
        drive.error = error
        drive.intrq = True

    def _update_irq(self) -> None:
        self._irq_level = self.drive_irq(self.irq, self.irq_level(), self._irq_level)

    # -- snapshots --------------------------------------------------------------------------

    state_fields = (
        *fields(INT, "features", "sector_count", "lba_low", "lba_mid", "lba_high", "device"),
        *fields(INT, "device_control"),
        *fields(BOOL, "_irq_level"),
    )

    def save_state(self) -> State:
        self._take_pos()
        drives: list[StateValue] = [None if d is None else d.save_state() for d in self.drives]
        return {**super().save_state(), "drives": drives}

    def load_state(self, state: Mapping[str, StateValue]) -> None:
        drives = state["drives"]
        if not (isinstance(drives, list)):
            raise TypeError("malformed ide device state")
        present = [drive is not None for drive in self.drives]
        if [saved is not None for saved in drives] != present:
            raise MachineError(
                f"{self.name}: the snapshot's drives (master, slave present: "
                f"{[saved is not None for saved in drives]}) are not this machine's ({present})"
            )
        super().load_state(state)
        for drive, saved in zip(self.drives, drives, strict=True):
            if drive is not None:
                if not (isinstance(saved, dict)):
                    raise TypeError("malformed ide device state")
                drive.load_state(saved)
        self._open_window()


def _identify_data(drive: _Drive) -> bytes:
    """The 256 words of IDENTIFY DEVICE (ATA/ATAPI-6, "IDENTIFY DEVICE"), little-endian."""
    total = drive.disk.sector_count
    words = [0] * 256
    words[0] = 0x0040  # general configuration: ATA device, fixed
    cylinders = max(1, min(16383, total // (DEFAULT_HEADS * DEFAULT_SECTORS_PER_TRACK)))
    words[1] = cylinders
    words[3] = DEFAULT_HEADS
    words[6] = DEFAULT_SECTORS_PER_TRACK
    _put_string(words, 10, 20, f"RDEBUG{drive.index:014d}")  # serial number
    _put_string(words, 23, 8, FIRMWARE)
    _put_string(words, 27, 40, MODEL)
    words[47] = 0x8000 | MAX_MULTIPLE  # READ/WRITE MULTIPLE: up to 16 sectors a block
    words[49] = 0x0200  # capabilities: LBA supported (no DMA)
    words[50] = 0x4000
    words[51] = 0x0200  # PIO mode 2 (obsolete field)
    words[53] = 0x0002  # words 64-70 valid (bit 0, words 54-58, set below)
    heads, sectors = drive.heads, drive.sectors_per_track
    if sectors:
        current_cylinders = min(0xFFFF, total // (heads * sectors))
        capacity = current_cylinders * heads * sectors
        words[53] |= 0x0001
        words[54:59] = [current_cylinders, heads, sectors, capacity & 0xFFFF, capacity >> 16]
    words[59] = 0x0100 | drive.multiple if drive.multiple else 0  # current multiple count
    lba28 = min(total, LBA28_SECTORS)
    words[60] = lba28 & 0xFFFF
    words[61] = lba28 >> 16
    words[64] = 0x0003  # advanced PIO modes 3 and 4
    words[65:69] = [120, 120, 120, 120]  # cycle times (ns)
    words[80] = 0x007E  # ATA-1 to ATA-6
    words[82] = 0x0000
    words[83] = 0x5000  # FLUSH CACHE supported (bit 12); bit 14 shall be one
    words[84] = 0x4000
    words[85] = 0x0000
    words[86] = 0x1000  # FLUSH CACHE enabled
    words[87] = 0x4000
    data = bytearray(b"".join(word.to_bytes(2, "little") for word in words))
    # Word 255, integrity word: signature A5h, then a checksum making all 512 bytes sum to 0.
    data[510] = 0xA5
    data[511] = -sum(data[:511]) & 0xFF
    return bytes(data)


def _put_string(words: list[int], first: int, length: int, text: str) -> None:
    """An ATA string: padded with spaces, two characters a word, the first in bits 15-8."""
    raw = text.ljust(length).encode("ascii")
    for i in range(length // 2):
        words[first + i] = raw[2 * i] << 8 | raw[2 * i + 1]
