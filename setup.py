"""Builds the native instruction counter and page walk (rdebug/machine/_icount.c, _vtlb.c)
at install time."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rdebug.machine._icount",
            sources=["rdebug/machine/_icount.c", "rdebug/machine/_pages.c", "rdebug/machine/_vtlb.c"],
            extra_compile_args=["-O3", "-std=c11"],
        )
    ]
)
