"""Builds the native instruction counter (rdebug/machine/_icount.c) at install time."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rdebug.machine._icount",
            sources=["rdebug/machine/_icount.c", "rdebug/machine/_pages.c"],
            extra_compile_args=["-O3", "-std=c11"],
        )
    ]
)
