"""Builds the native extensions at install time: the instruction counter, the page walk
and the system-call path (rdebug/machine/_icount.c, _vtlb.c, _intr.c) and the dirty-page
tracker (rdebug/machine/_pages.c)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rdebug.machine._icount",
            sources=[
                "rdebug/machine/_icount.c",
                "rdebug/machine/_vtlb.c",
                "rdebug/machine/_intr.c",
            ],
            extra_compile_args=["-O3", "-std=c11"],
        ),
        Extension(
            "rdebug.machine._pages",
            sources=["rdebug/machine/_pages.c"],
            extra_compile_args=["-O3", "-std=c11"],
        ),
    ]
)
