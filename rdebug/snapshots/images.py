"""Opening the user's disk images, read-only: raw files and qcow2 (with backing chains)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rdebug.errors import UsageError

SECTOR = 512


class RawImage:
    """A raw image file, opened read-only."""

    def __init__(self, path: Path) -> None:
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise UsageError(f"{path}: cannot open the disk image: {exc.strerror}") from None
        self.path = path
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        data = os.pread(self._fd, length, offset)
        return data + bytes(length - len(data))

    def close(self) -> None:
        os.close(self._fd)


class Qcow2Base:
    """A qcow2 image (and its backing chain), opened read-only."""

    def __init__(self, path: Path) -> None:
        from rdebug.snapshots.qcow2 import Qcow2Image  # noqa: PLC0415

        self._image = Qcow2Image.open(path, writable=False)
        self.path = path
        self.size = self._image.size

    def read(self, offset: int, length: int) -> bytes:
        return self._image.read(offset, length)

    def close(self) -> None:
        self._image.close()


def detect_format(path: Path) -> str:
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise UsageError(f"{path}: cannot open the disk image: {exc.strerror}") from None
    return "qcow2" if magic == b"QFI\xfb" else "raw"


def open_image(path: Path, fmt: str | None = None) -> RawImage | Qcow2Base:
    fmt = fmt or detect_format(path)
    if fmt == "raw":
        return RawImage(path)
    if fmt == "qcow2":
        return Qcow2Base(path)
    raise UsageError(f"{path}: unknown disk image format {fmt!r} (raw or qcow2)")


def write_overlay(
    path: Path, backing: Path, backing_format: str, size: int, written: Mapping[int, bytes]
) -> None:
    """A qcow2 overlay over `backing` holding the sectors the guest wrote."""
    from rdebug.snapshots.qcow2 import Qcow2Image  # noqa: PLC0415

    with Qcow2Image.create(
        path, size=size, backing=backing, backing_format=backing_format
    ) as image:
        run_start: int | None = None
        chunk = bytearray()
        for lba in sorted(written):
            if run_start is not None and lba == run_start + len(chunk) // SECTOR:
                chunk += written[lba]
                continue
            if run_start is not None:
                image.write(run_start * SECTOR, bytes(chunk))
            run_start, chunk = lba, bytearray(written[lba])
        if run_start is not None:
            image.write(run_start * SECTOR, bytes(chunk))
        image.flush()
