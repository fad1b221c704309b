"""The image file: positioned reads and writes, and the errors that name the image."""

from __future__ import annotations

import os
from pathlib import Path

from rdebug.errors import SnapshotError


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class ImageFile:
    """One open qcow2 file; every other part of the image reads and writes through it."""

    def __init__(self, path: Path, fd: int, writable: bool) -> None:
        self.path = path
        self.fd = fd
        self.writable = writable

    def damaged(self, what: str) -> SnapshotError:
        return SnapshotError(f"{self.path}: damaged qcow2 image: {what}")

    def unsupported(self, what: str) -> SnapshotError:
        return SnapshotError(f"{self.path}: unsupported qcow2 image: {what}")

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def pread(self, offset: int, length: int) -> bytes:
        self.require_open()
        try:
            return os.pread(self.fd, length, offset)
        except OSError as exc:
            raise SnapshotError(f"{self.path}: read failed: {exc.strerror}") from exc

    def pwrite(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        self.require_open()
        view = memoryview(data)
        try:
            while view:
                written = os.pwrite(self.fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as exc:
            raise SnapshotError(f"{self.path}: write failed: {exc.strerror}") from exc

    def require_open(self) -> None:
        if self.fd < 0:
            raise SnapshotError(f"{self.path}: image is closed")

    def require_writable(self) -> None:
        self.require_open()
        if not self.writable:
            raise SnapshotError(f"{self.path}: image is open read-only")

    def check_table(
        self, what: str, offset: int, length: int, file_size: int, cluster_size: int
    ) -> None:
        """A metadata table must start on a cluster and lie inside the file."""
        if offset % cluster_size:
            raise self.damaged(f"{what} offset {offset:#x} is not cluster-aligned")
        if length and (offset == 0 or offset + length > file_size):
            raise self.damaged(f"{what} at {offset:#x} lies beyond the end of the file")

    def flush(self) -> None:
        self.require_open()
        if self.writable:
            try:
                os.fsync(self.fd)
            except OSError as exc:
                raise SnapshotError(f"{self.path}: flush failed: {exc.strerror}") from exc

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
