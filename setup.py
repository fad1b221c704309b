"""Builds the native extensions at install time: the instruction counter, the page walk,
the system-call path and the local APIC's (rdebug/machine/_icount.c, _vtlb.c, _intr.c,
_lapic.c) and the dirty-page tracker (rdebug/machine/_pages.c)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rdebug.machine._icount",
            sources=[
                "rdebug/machine/_icount.c",
                "rdebug/machine/_vtlb.c",
                "rdebug/machine/_intr.c",
                "rdebug/machine/_lapic.c",
            ],
            depends=["rdebug/machine/_lapic.h"],
            extra_compile_args=["-O3", "-std=c11"],
        ),
        Extension(
            "rdebug.machine._pages",
            sources=["rdebug/machine/_pages.c"],
            extra_compile_args=["-O3", "-std=c11"],
        ),
    ]
)
