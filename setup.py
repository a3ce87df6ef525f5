"""Only for the optional C reader of lmstat checkout lines; everything else is in
pyproject.toml. Without a C compiler the build goes on and flexlm.py reads them itself."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sync.sources._flexlm_c",
            ["sync/sources/_flexlm_c.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        )
    ]
)
