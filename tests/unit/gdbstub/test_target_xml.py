"""The i386 target description: well-formed, gdb's names and sizes, numbering = `g` order."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from rdebug.gdbstub.target_xml import RegisterLayout, i386_layout

GPRS = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "eip", "eflags"]
SEGMENTS = ["cs", "ss", "ds", "es", "fs", "gs"]
X87_CONTROL = ["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"]
CORE_NAMES = [*GPRS, *SEGMENTS, *(f"st{i}" for i in range(8)), *X87_CONTROL]
SSE_NAMES = [*(f"xmm{i}" for i in range(8)), "mxcsr"]


def _parse(layout: RegisterLayout) -> ET.Element:
    text = layout.target_xml
    assert text.startswith('<?xml version="1.0"?>\n<!DOCTYPE target SYSTEM "gdb-target.dtd">')
    return ET.fromstring(text)


@pytest.mark.parametrize("sse", [True, False])
def test_target_xml_is_well_formed_and_matches_the_g_packet(sse: bool) -> None:
    layout = i386_layout(sse=sse)
    root = _parse(layout)
    assert root.tag == "target"
    assert root.findtext("architecture") == "i386"
    regs = root.findall("feature/reg")
    names = [r.get("name") for r in regs]
    assert names == CORE_NAMES + (SSE_NAMES if sse else [])
    # registers are numbered in document order, and the g packet is their concatenation
    sizes = [int(r.get("bitsize", "0")) // 8 for r in regs]
    assert sum(sizes) == layout.g_size == (308 if sse else 176)
    assert [r.size for r in layout.registers] == sizes
    assert [layout.offset(n) for n in range(len(regs))] == [
        sum(sizes[:n]) for n in range(len(regs))
    ]


def test_features_and_types_follow_gdb() -> None:
    root = _parse(i386_layout())
    features = {f.get("name"): f for f in root.findall("feature")}
    assert list(features) == ["org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse"]
    types = {r.get("name"): r.get("type") for r in root.iter("reg")}
    assert types["eip"] == "code_ptr"
    assert types["esp"] == types["ebp"] == "data_ptr"
    assert types["eax"] == "int32"
    assert types["eflags"] == "i386_eflags"
    assert types["st0"] == "i387_ext"
    assert types["xmm0"] == "vec128"
    assert types["mxcsr"] == "i386_mxcsr"
    # every non-builtin type a register uses is defined in the document
    defined = {t.get("id") for t in root.iter() if t.tag in ("flags", "vector", "union")}
    builtin = {"int32", "int", "code_ptr", "data_ptr", "i387_ext"}
    assert {t for t in types.values() if t not in builtin} <= defined
    eflags = root.find("feature/flags[@id='i386_eflags']")
    assert eflags is not None
    fields = {f.get("name"): int(f.get("start", "-1")) for f in eflags}
    assert (fields["CF"], fields["ZF"], fields["IF"], fields["ID"]) == (0, 6, 9, 21)


def test_gdb_numbers() -> None:
    layout = i386_layout()
    assert layout.regnum("eax") == 0
    assert layout.regnum("eip") == 8
    assert layout.regnum("eflags") == 9
    assert layout.regnum("st0") == 16
    assert layout.regnum("fop") == 31
    assert layout.regnum("xmm0") == 32
    assert layout.regnum("mxcsr") == 40
    assert layout.offset(layout.regnum("fctrl")) == 64 + 80
    with pytest.raises(KeyError):
        layout.register(41)
    with pytest.raises(KeyError):
        layout.offset(-1)
