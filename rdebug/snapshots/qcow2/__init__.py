"""qcow2 version 3 images: an overlay disk over a raw or qcow2 backing file, with internal
snapshots that carry a VM state blob and the icount they were taken at.

Owns every byte of the image file (layout from QEMU's docs/interop/qcow2.txt); knows
nothing of machines, replay logs or what a VM state blob means.  All numbers big-endian.
Split as QEMU's block/qcow2*.c is:

    header.py          the header, its validation and extensions, a new image's layout
    clusters.py        guest offset -> host cluster (L1/L2 tables), copy on write
    refcount.py        host cluster -> refcount, allocation and freeing
    snapshot_table.py  the snapshot table and its entries
    image.py           `Qcow2Image`: the operations, composed of the above
    file.py            positioned reads and writes of the image file

    file     +--------+-------------+--------------+---------+----------+-----------+
             | header | refcount    | refcount     | L1      | L2 tables, data and  |
             | (clus- | table       | blocks       | table   | snapshot tables, in  |
             | ter 0) | (contiguous)| (a cluster   | (conti- | allocation order     |
             |        |             |  each)       | guous)  |                      |
             +--------+-------------+--------------+---------+----------------------+

Refcount rule this package keeps (the one ``qemu-img check`` verifies): an L2 table counts
one reference per L1 table (active or snapshot) that points at it, a data cluster one per
L1 table that reaches it through any L2 table.  Bit 63 ("COPIED") of an entry of the
active L1 table and of the L2 tables it reaches is set exactly when that refcount is 1;
only such clusters are written in place, anything else is copied on write.

The VM state of a snapshot is stored like disk content at guest offsets past the virtual
disk, from the first L1 entry that describes no disk cluster (``vm_state_offset``).

Not supported: compressed clusters (refused when met), encryption, external data files,
extended L2 entries, non-zlib compression types, subcluster allocation, bitmaps (their
auto-clear bit is cleared on a writable open, as the spec asks), writing to version 2
images or to images with refcounts narrower than 8 bits, resizing.
"""

from rdebug.snapshots.qcow2.header import MAGIC, VERSION
from rdebug.snapshots.qcow2.image import Qcow2Image
from rdebug.snapshots.qcow2.snapshot_table import SnapshotInfo

__all__ = ["MAGIC", "VERSION", "Qcow2Image", "SnapshotInfo"]
