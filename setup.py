"""Builds the native extensions at install time: the instruction counter, the page walk,
the system-call path, the local APIC's and the block decoder (rdebug/machine/_icount.c,
_vtlb.c, _intr.c, _lapic.c, _decode.c) and the dirty-page tracker
(rdebug/machine/_pages.c).

The block decoder is compiled against the headers the capstone package ships (a build
requirement in pyproject.toml) and opens that package's library at run time."""

import importlib.util
import os

from setuptools import Extension, setup


def capstone_include() -> list[str]:
    """The folder holding capstone/capstone.h: the capstone package's, or the system's."""
    spec = importlib.util.find_spec("capstone")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        include = os.path.join(folder, "include")
        if os.path.isfile(os.path.join(include, "capstone", "capstone.h")):
            return [include]
    return []  # /usr/include/capstone (libcapstone-dev), or the compiler says it is missing

setup(
    ext_modules=[
        Extension(
            "rdebug.machine._icount",
            sources=[
                "rdebug/machine/_icount.c",
                "rdebug/machine/_vtlb.c",
                "rdebug/machine/_intr.c",
                "rdebug/machine/_lapic.c",
                "rdebug/machine/_decode.c",
            ],
            depends=["rdebug/machine/_lapic.h"],
            include_dirs=capstone_include(),
            libraries=["dl"],
            extra_compile_args=["-O3", "-std=c11"],
        ),
        Extension(
            "rdebug.machine._pages",
            sources=["rdebug/machine/_pages.c"],
            extra_compile_args=["-O3", "-std=c11"],
        ),
    ]
)
