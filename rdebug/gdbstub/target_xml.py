"""Target descriptions: the register layout gdb sees, and the ``target.xml`` that tells it.

Owns the layout types (`Register`, `Feature`, `RegisterLayout`), their rendering as a gdb
target description (GDB manual, appendix "Target Descriptions", nodes "Target Description
Format" and "i386 Features"), and the i386 layout itself.  Knows nothing about packets,
sockets or emulators.

One rule ties this module to the ``g``/``G``/``p``/``P`` packets: registers are numbered
from 0 in the order they appear, feature after feature (the manual's default for a
``<reg>`` without ``regnum``), and the ``g`` packet is every register's bytes, in target
byte order, in that numbering::

    regnum  0..7   eax ecx edx ebx esp ebp esi edi    4 bytes each   org.gnu.gdb.i386.core
            8, 9   eip eflags                          4
           10..15  cs ss ds es fs gs                   4
           16..23  st0..st7                           10 (i387_ext)
           24..31  fctrl fstat ftag fiseg fioff foseg fooff fop   4
           32..39  xmm0..xmm7                         16             org.gnu.gdb.i386.sse
           40      mxcsr                               4
                                          g packet: 308 bytes (176 without SSE)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import cached_property


@dataclass(frozen=True, slots=True)
class Register:
    """One register: its gdb name, width in bits, gdb type, and optional register group."""

    name: str
    bitsize: int
    type: str
    group: str | None = None

    @property
    def size(self) -> int:
        """Width in bytes (as it appears in the ``g`` packet)."""
        return (self.bitsize + 7) // 8


@dataclass(frozen=True, slots=True)
class FlagsType:
    """A ``<flags>`` type: named bit fields of an integer register."""

    id: str
    size: int
    fields: tuple[tuple[str, int, int], ...]  # (name, start bit, end bit)


@dataclass(frozen=True, slots=True)
class VectorType:
    """A ``<vector>`` type: `count` elements of `element_type`."""

    id: str
    element_type: str
    count: int


@dataclass(frozen=True, slots=True)
class UnionType:
    """A ``<union>`` type: several views of the same bits."""

    id: str
    fields: tuple[tuple[str, str], ...]  # (name, type)


TypeDef = FlagsType | VectorType | UnionType


@dataclass(frozen=True, slots=True)
class Feature:
    """A ``<feature>``: a named group of registers and the types they use."""

    name: str
    registers: tuple[Register, ...]
    types: tuple[TypeDef, ...] = ()


@dataclass(frozen=True)
class RegisterLayout:
    """The registers of a target, numbered as gdb numbers them, and their description.

    >>> layout = i386_layout()
    >>> layout.regnum("eip"), layout.offset(8), layout.register(8).size
    (8, 32, 4)
    >>> layout.g_size
    308
    """

    architecture: str
    features: tuple[Feature, ...]
    _by_name: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [r.name for r in self.registers]
        if len(set(names)) != len(names):
            raise ValueError("register names must be unique")
        object.__setattr__(self, "_by_name", {name: n for n, name in enumerate(names)})

    @cached_property
    def registers(self) -> tuple[Register, ...]:
        """Every register; its index is its gdb register number."""
        return tuple(r for f in self.features for r in f.registers)

    @cached_property
    def _offsets(self) -> tuple[int, ...]:
        offsets = [0]
        for r in self.registers:
            offsets.append(offsets[-1] + r.size)
        return tuple(offsets)

    @property
    def address_bits(self) -> int:
        """Width of a target address: 64 for an x86-64 layout, 32 otherwise (i386)."""
        return 64 if "64" in self.architecture else 32

    @property
    def g_size(self) -> int:
        """Bytes in a ``g`` packet reply (all registers)."""
        return self._offsets[-1]

    def register(self, regnum: int) -> Register:
        """The register numbered `regnum`; `KeyError` if there is none."""
        if not 0 <= regnum < len(self.registers):
            raise KeyError(regnum)
        return self.registers[regnum]

    def regnum(self, name: str) -> int:
        """The gdb number of the register called `name`; `KeyError` if there is none."""
        return self._by_name[name]

    def offset(self, regnum: int) -> int:
        """Where register `regnum` starts in the ``g`` packet."""
        self.register(regnum)
        return self._offsets[regnum]

    @cached_property
    def target_xml(self) -> str:
        """The whole description as one ``target.xml`` document (no ``xi:include``)."""
        root = ET.Element("target", version="1.0")
        ET.SubElement(root, "architecture").text = self.architecture
        for feature in self.features:
            el = ET.SubElement(root, "feature", name=feature.name)
            for typedef in feature.types:
                _render_type(el, typedef)
            for reg in feature.registers:
                attrs = {"name": reg.name, "bitsize": str(reg.bitsize), "type": reg.type}
                if reg.group is not None:
                    attrs["group"] = reg.group
                ET.SubElement(el, "reg", attrs)
        ET.indent(root)
        body = ET.tostring(root, encoding="unicode")
        return f'<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">\n{body}\n'


def _render_type(parent: ET.Element, typedef: TypeDef) -> None:
    match typedef:
        case FlagsType(id=type_id, size=size, fields=fields):
            el = ET.SubElement(parent, "flags", id=type_id, size=str(size))
            for name, start, end in fields:
                ET.SubElement(el, "field", name=name, start=str(start), end=str(end))
        case VectorType(id=type_id, element_type=element_type, count=count):
            ET.SubElement(parent, "vector", id=type_id, type=element_type, count=str(count))
        case UnionType(id=type_id, fields=union_fields):
            el = ET.SubElement(parent, "union", id=type_id)
            for name, field_type in union_fields:
                ET.SubElement(el, "field", name=name, type=field_type)


# -- i386 (GDB manual, node "i386 Features") ----------------------------------------------

#: EFLAGS bits (Intel SDM vol. 1, 3.4.3), shown by gdb as ``[ ZF PF ]``.
_EFLAGS = FlagsType(
    "i386_eflags",
    4,
    tuple(
        (name, bit, bit)
        for name, bit in (
            ("CF", 0), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8), ("IF", 9),
            ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17), ("AC", 18),
            ("VIF", 19), ("VIP", 20), ("ID", 21),
        )
    ),
)  # fmt: skip

#: MXCSR bits (Intel SDM vol. 1, 10.2.3).
_MXCSR = FlagsType(
    "i386_mxcsr",
    4,
    tuple(
        (name, bit, bit)
        for name, bit in (
            ("IE", 0), ("DE", 1), ("ZE", 2), ("OE", 3), ("UE", 4), ("PE", 5), ("DAZ", 6),
            ("IM", 7), ("DM", 8), ("ZM", 9), ("OM", 10), ("UM", 11), ("PM", 12), ("FZ", 15),
        )
    ),
)  # fmt: skip

_VEC128_VIEWS = (
    ("v4_float", "ieee_single", 4),
    ("v2_double", "ieee_double", 2),
    ("v16_int8", "int8", 16),
    ("v8_int16", "int16", 8),
    ("v4_int32", "int32", 4),
    ("v2_int64", "int64", 2),
)


def _gpr(name: str, type_: str = "int32") -> Register:
    return Register(name, 32, type_)


I386_CORE = Feature(
    "org.gnu.gdb.i386.core",
    (
        *(_gpr(n) for n in ("eax", "ecx", "edx", "ebx")),
        _gpr("esp", "data_ptr"),
        _gpr("ebp", "data_ptr"),
        _gpr("esi"),
        _gpr("edi"),
        _gpr("eip", "code_ptr"),
        _gpr("eflags", "i386_eflags"),
        *(_gpr(n) for n in ("cs", "ss", "ds", "es", "fs", "gs")),
        *(Register(f"st{i}", 80, "i387_ext") for i in range(8)),
        *(
            Register(n, 32, "int", "float")
            for n in ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")
        ),
    ),
    (_EFLAGS,),
)

I386_SSE = Feature(
    "org.gnu.gdb.i386.sse",
    (
        *(Register(f"xmm{i}", 128, "vec128") for i in range(8)),
        Register("mxcsr", 32, "i386_mxcsr", "vector"),
    ),
    (
        *(VectorType(f"v{count}_{elem}", elem, count) for _, elem, count in _VEC128_VIEWS),
        UnionType(
            "vec128",
            (
                *((name, f"v{count}_{elem}") for name, elem, count in _VEC128_VIEWS),
                ("uint128", "uint128"),
            ),
        ),
        _MXCSR,
    ),
)


def i386_layout(sse: bool = True) -> RegisterLayout:
    """The i386 layout: ``org.gnu.gdb.i386.core``, plus ``org.gnu.gdb.i386.sse`` if `sse`.

    >>> i386_layout(sse=False).g_size
    176
    >>> [r.name for r in i386_layout().registers[30:33]]
    ['fooff', 'fop', 'xmm0']
    """
    return RegisterLayout("i386", (I386_CORE, I386_SSE) if sse else (I386_CORE,))
