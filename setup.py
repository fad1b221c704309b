"""Builds the native extension at install time: rdebug.machine._icount, the instruction
counter (rdebug/machine/_icount.c) with RAM write tracking for checkpoints (_pages.c)."""

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
