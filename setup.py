"""Only for the optional C reader of lmstat checkout lines; everything else is in
pyproject.toml. Without a C compiler the build goes on and flexlm.py reads them itself."""

import hashlib
from pathlib import Path

from setuptools import Extension, setup

SOURCE = "sync/sources/_flexlm_c.c"
# flexlm.py compares this with the source beside it and ignores a build of another source
SHA = hashlib.sha256(Path(SOURCE).read_bytes()).hexdigest()

setup(
    ext_modules=[
        Extension(
            "sync.sources._flexlm_c",
            [SOURCE],
            optional=True,
            define_macros=[("SOURCE_SHA256", f'"{SHA}"')],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        )
    ]
)
