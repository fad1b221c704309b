"""Trace folders: a recording and everything replay needs to rebuild its machine.

    TRACE/
      trace.json       what machine ran what guest: options, guest name, path and SHA-256
      guest            a copy of the guest image (replay needs nothing else)
      initrd           a copy of a Linux guest's initrd (--initrd), if it had one
      replay.log       the event log (replay/log.py)
      snapshots.qcow2  named snapshots (qcow2 internal snapshots, the machine state in
                       each one's VM state area): "init" at icount 0, then savevm's

`rdebug replay TRACE` takes no other argument.  The guest copy is checked against its
recorded hash; if the copy is gone, the original path is used if its hash still matches.
Bump TRACE_VERSION when this layout or trace.json changes.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rdebug.errors import FormatError, UsageError
from rdebug.machine.disks import OverlayDisk
from rdebug.machine.kallsyms import symbol_elf
from rdebug.machine.loader import ImageFormat, LazySymbols, LoadedImage, parse_image
from rdebug.machine.machine import MachineConfig
from rdebug.snapshots.images import detect_format, open_image

if TYPE_CHECKING:
    from rdebug.machine.devices.ne2000 import NicConfig
    from rdebug.machine.devices.sb16 import Sb16Config

TRACE_FORMAT = "rdebug-trace"
#: Bump when the folder layout or trace.json changes.
TRACE_VERSION = 4
#: Older versions this rdebug still reads (2: before the "nic" entry, it had no NIC;
#: 3: before the "sound" entry, it had no sound card).
_READABLE_VERSIONS = (2, 3, TRACE_VERSION)
META_NAME = "trace.json"
GUEST_NAME = "guest"
INITRD_NAME = "initrd"
GDB_SYMBOLS_NAME = "symbols.elf"
LOG_NAME = "replay.log"
SNAPSHOTS_NAME = "snapshots.qcow2"


@dataclass(frozen=True, slots=True)
class GuestSpec:
    """How the guest image was loaded."""

    name: str
    source: str  # absolute path of the original image
    sha256: str
    format: str = ImageFormat.AUTO.value
    load_address: int | None = None
    entry: int | None = None
    append: str = ""
    #: A Linux kernel's initrd: absolute path of the original and its SHA-256, or None.
    initrd: str | None = None
    initrd_sha256: str | None = None
    #: A Linux kernel: how far KASLR moved it in the recording (found at its end), which
    #: its symbols (read from the image at link-time addresses) are moved by.
    kernel_offset: int | None = None


@dataclass(frozen=True, slots=True)
class DriveSpec:
    """An IDE drive: the user's image (never written) and how it was opened."""

    index: int  # 0 master, 1 slave
    source: str  # absolute path of the user's image
    format: str  # "raw" or "qcow2"
    sha256: str


@dataclass(frozen=True, slots=True)
class TraceInfo:
    """What trace.json says: the guest, and the machine it ran on."""

    guest: GuestSpec
    memory_mb: int
    icount_shift: int
    drives: tuple[DriveSpec, ...] = ()
    nic: NicConfig | None = None
    sound: Sb16Config | None = None

    def machine_config(self) -> MachineConfig:
        return MachineConfig(
            memory_mb=self.memory_mb, icount_shift=self.icount_shift, nic=self.nic, sound=self.sound
        )


def sha256(data: bytes) -> str:
    import hashlib  # noqa: PLC0415 - its OpenSSL is 2.5 ms of a plain run's start-up

    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    import hashlib  # noqa: PLC0415 - as in sha256

    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    return digest.hexdigest()


def drive_spec(index: int, path: Path, fmt: str | None, option: str) -> DriveSpec:
    """IDE drive `index` over the image at `path`, in format `fmt` (detected if None);
    `option` names it in error messages."""
    if not path.is_file():
        raise UsageError(f"{option}: {path}: no such file")
    fmt = fmt or detect_format(path)
    if fmt not in ("raw", "qcow2"):
        raise UsageError(f"{option}: format must be raw or qcow2")
    return DriveSpec(index, str(path.resolve()), fmt, file_sha256(path))


def open_disks(drives: tuple[DriveSpec, ...], check: bool) -> list[OverlayDisk | None]:
    """The machine's disks over the user's images (checked against their hashes)."""
    disks: list[OverlayDisk | None] = [None, None]
    for drive in drives:
        path = Path(drive.source)
        if check and file_sha256(path) != drive.sha256:
            raise FormatError(f"{path}: the disk image changed since it was recorded")
        disks[drive.index] = OverlayDisk(open_image(path, drive.format))
    return disks


def load_guest(spec: GuestSpec, data: bytes, initrd: bytes | None = None) -> LoadedImage:
    image = parse_image(
        data,
        spec.name,
        ImageFormat(spec.format),
        spec.load_address,
        spec.entry,
        spec.append,
        initrd,
    )
    if spec.kernel_offset:
        offset, symbols = spec.kernel_offset, image.symbols
        moved = LazySymbols(
            lambda: {name: (addr + offset) & 0xFFFFFFFF for name, addr in symbols.items()}
        )
        image = dataclasses.replace(image, symbols=moved)
    return image


class Trace:
    """An open trace folder."""

    def __init__(self, path: Path, info: TraceInfo) -> None:
        self.path = path
        self.info = info

    @property
    def log_path(self) -> Path:
        return self.path / LOG_NAME

    @property
    def snapshots_path(self) -> Path:
        return self.path / SNAPSHOTS_NAME

    # -- creating ---------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: Path,
        guest: bytes,
        spec: GuestSpec,
        config: MachineConfig,
        drives: tuple[DriveSpec, ...] = (),
        initrd: bytes | None = None,
    ) -> Trace:
        """Make a new trace folder (refusing to touch an existing non-empty one)."""
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise UsageError(f"{path}: already exists; give a new folder for the recording")
        try:
            path.mkdir(parents=True, exist_ok=True)
            (path / GUEST_NAME).write_bytes(guest)
            if initrd is not None:
                (path / INITRD_NAME).write_bytes(initrd)
            info = TraceInfo(
                spec, config.memory_mb, config.icount_shift, drives, config.nic, config.sound
            )
            _write_meta(path, info)
        except OSError as exc:
            raise UsageError(f"{path}: cannot create the trace: {exc.strerror}") from None
        return cls(path, info)

    def open_log_for_writing(self) -> int:
        try:
            return os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise UsageError(f"{self.log_path}: cannot create: {exc.strerror}") from None

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path) -> Trace:
        meta_path = path / META_NAME
        if path.is_file():
            if (path.parent / META_NAME).is_file():
                raise UsageError(
                    f"{path}: a file inside the trace folder {path.parent}: give the folder"
                )
            raise UsageError(
                f"{path}: a file, not a trace folder (a guest image? record it first: "
                f"rdebug record {path})"
            )
        if not path.is_dir():
            raise UsageError(f"{path}: no such trace folder")
        import json  # noqa: PLC0415 - `rdebug run` reads no trace

        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise FormatError(f"{path}: not a trace folder (no {META_NAME})") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FormatError(f"{meta_path}: unreadable: {exc}") from None
        if not isinstance(meta, dict) or meta.get("format") != TRACE_FORMAT:
            raise FormatError(f"{meta_path}: not an rdebug trace description")
        if meta.get("version") not in _READABLE_VERSIONS:
            raise FormatError(
                f"{meta_path}: trace version {meta.get('version')!r}, this rdebug reads "
                f"version {TRACE_VERSION}"
            )
        return cls(path, _from_json(meta, meta_path))

    def disk_overlay_path(self, index: int) -> Path:
        return self.path / f"disk{index}.qcow2"

    def guest_image(self) -> bytes:
        """The guest image, checked against the hash recorded with the trace."""
        spec = self.info.guest
        return self._kept_file(GUEST_NAME, spec.source, spec.sha256, "guest image")

    def initrd_image(self) -> bytes | None:
        """A Linux guest's initrd (None if it had none), checked against its hash."""
        spec = self.info.guest
        if spec.initrd is None or spec.initrd_sha256 is None:
            return None
        return self._kept_file(INITRD_NAME, spec.initrd, spec.initrd_sha256, "initrd")

    def set_kernel_offset(self, offset: int, symbols: Mapping[str, int]) -> None:
        """After recording a Linux guest: where KASLR put its kernel, and a symbol file
        for gdb (an ELF with the kernel's moved symbols; gdb cannot read a bzImage)."""
        spec = dataclasses.replace(self.info.guest, kernel_offset=offset)
        self.info = dataclasses.replace(self.info, guest=spec)
        moved = {name: (addr + offset) & 0xFFFFFFFF for name, addr in symbols.items()}
        try:
            (self.path / GDB_SYMBOLS_NAME).write_bytes(symbol_elf(moved))
            _write_meta(self.path, self.info)
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot update the trace: {exc.strerror}") from None

    def gdb_symbols(self) -> Path:
        """The file gdb reads the guest's symbols from: the guest image, or for a Linux
        kernel the symbol file made at the end of the recording."""
        kept = self.path / GDB_SYMBOLS_NAME
        return kept if kept.exists() else self.path / GUEST_NAME

    def loaded_guest(self) -> LoadedImage:
        """The guest as recorded, ready for `Machine.load`."""
        return load_guest(self.info.guest, self.guest_image(), self.initrd_image())

    def _kept_file(self, name: str, source: str, digest: str, what: str) -> bytes:
        copy = self.path / name
        if copy.exists():
            data = copy.read_bytes()
            if sha256(data) != digest:
                raise FormatError(
                    f"{copy}: the {what} changed since it was recorded (SHA-256 "
                    f"{sha256(data)[:16]}..., recorded {digest[:16]}...)"
                )
            return data
        try:
            data = Path(source).read_bytes()
        except OSError:
            raise FormatError(
                f"{self.path}: the {what} copy is missing and {source} cannot be read"
            ) from None
        if sha256(data) != digest:
            raise FormatError(
                f"{source}: the {what} changed since it was recorded "
                f"(and the trace's copy is missing)"
            )
        return data


def _write_meta(path: Path, info: TraceInfo) -> None:
    """The trace description, trace.json, written whole or not at all."""
    import json  # noqa: PLC0415 - `rdebug run` writes no trace

    meta = {"format": TRACE_FORMAT, "version": TRACE_VERSION, **_to_json(info)}
    tmp = path / (META_NAME + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    tmp.replace(path / META_NAME)


def _to_json(info: TraceInfo) -> dict[str, Any]:
    return {
        "machine": {"memory_mb": info.memory_mb, "icount_shift": info.icount_shift},
        "guest": asdict(info.guest),
        "drives": [asdict(d) for d in info.drives],
        "nic": None if info.nic is None else _nic_to_json(info.nic),
        "sound": None if info.sound is None else {"model": "sb16", **asdict(info.sound)},
    }


def _nic_to_json(nic: NicConfig) -> dict[str, Any]:
    # the NIC's module, loaded already with a NIC (see _from_json)
    from rdebug.machine.devices.ne2000 import format_mac  # noqa: PLC0415

    return {"model": "ne2k_isa", "iobase": nic.iobase, "irq": nic.irq, "mac": format_mac(nic.mac)}


def _from_json(meta: dict[str, Any], where: Path) -> TraceInfo:
    # the NIC's and sound card's modules: only where a trace is read or written (a plain
    # `rdebug run` of a machine without them does not load them)
    from rdebug.machine.devices.ne2000 import NicConfig  # noqa: PLC0415
    from rdebug.machine.devices.sb16 import Sb16Config  # noqa: PLC0415

    try:
        machine = meta["machine"]
        guest = meta["guest"]
        spec = GuestSpec(
            name=str(guest["name"]),
            source=str(guest["source"]),
            sha256=str(guest["sha256"]),
            format=str(guest["format"]),
            load_address=_opt_int(guest.get("load_address")),
            entry=_opt_int(guest.get("entry")),
            append=str(guest.get("append", "")),
            initrd=None if guest.get("initrd") is None else str(guest["initrd"]),
            initrd_sha256=None
            if guest.get("initrd_sha256") is None
            else str(guest["initrd_sha256"]),
            kernel_offset=_opt_int(guest.get("kernel_offset")),
        )
        ImageFormat(spec.format)
        drives = tuple(
            DriveSpec(int(d["index"]), str(d["source"]), str(d["format"]), str(d["sha256"]))
            for d in meta.get("drives", [])
        )
        nic = meta.get("nic")
        nic_config = (
            None
            if nic is None
            else NicConfig(
                int(nic["iobase"]), int(nic["irq"]), bytes.fromhex(str(nic["mac"]).replace(":", ""))
            )
        )
        sound = meta.get("sound")
        sound_config = (
            None
            if sound is None
            else Sb16Config(
                int(sound["iobase"]), int(sound["irq"]), int(sound["dma"]), int(sound["dma16"])
            )
        )
        return TraceInfo(
            spec,
            int(machine["memory_mb"]),
            int(machine["icount_shift"]),
            drives,
            nic_config,
            sound_config,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise FormatError(f"{where}: malformed trace description ({exc})") from None


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int):
        raise TypeError(f"expected an integer, got {value!r}")
    return value
