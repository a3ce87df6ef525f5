"""The optional C reader of checkout lines gives the very report flexlm.py gives alone."""

from __future__ import annotations

import atexit
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.parse_flexlm import generate
from sync.errors import ParseError
from sync.report import Checkout
from sync.sources import flexlm

from .test_properties import FLEX, mutated_fixture

ROOT = Path(__file__).parent.parent.parent

SOURCE = ROOT / "sync/sources/_flexlm_c.c"
INCLUDE = f"-I{sysconfig.get_paths()['include']}"


def load(path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("_flexlm_c", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reader_under_test() -> ModuleType | None:
    """The C reader these tests hold to flexlm.py, built here from the source as it is now:
    never a stale build, however the package was installed. LICENSE_SYNC_TEST_C_READER
    names another build (the sanitizer run's). Without a compiler, the installed one."""
    if os.environ.get("LICENSE_SYNC_TEST_C_READER"):
        return load(os.environ["LICENSE_SYNC_TEST_C_READER"])
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        try:
            from sync.sources import _flexlm_c
        except ImportError:
            return None
        return _flexlm_c
    build = tempfile.mkdtemp(prefix="flexlm_c_")
    atexit.register(shutil.rmtree, build, ignore_errors=True)
    out = Path(build) / f"_flexlm_c{sysconfig.get_config_var('EXT_SUFFIX')}"
    cmd = [cc, "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", INCLUDE]
    made = subprocess.run([*cmd, str(SOURCE), "-o", str(out)], capture_output=True, text=True)
    if made.returncode != 0:  # a compiler is here: the source must build
        raise RuntimeError(f"{SOURCE} does not compile:\n{made.stderr}")
    return load(out)


_flexlm_c = reader_under_test()
needs_c = pytest.mark.skipif(_flexlm_c is None, reason="no C compiler and no C reader built")


def test_ci_builds_the_c_reader_into_the_package():
    """On CI the compiler is there: a broken build must fail here, not fall back quietly."""
    if os.environ.get("CI") != "true":
        pytest.skip("only CI promises a C compiler")
    assert flexlm.ACCELERATED  # built, and of this very source (else it is not used)
    text, _ = generate(features=3, checkouts=600)
    with_installed = flexlm.parse(text)
    reader, flexlm._read_checkouts_c = flexlm._read_checkouts_c, None
    try:
        assert with_installed == flexlm.parse(text)
    finally:
        flexlm._read_checkouts_c = reader


def both(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    """(report or ParseError text) with the C reader, then with flexlm.py alone."""

    def run() -> object:
        try:
            return flexlm.parse(text).to_dict()
        except ParseError as e:
            return f"ParseError: {e}"

    with monkeypatch.context() as m:
        m.setattr(flexlm, "_read_checkouts_c", _flexlm_c.checkouts)
        with_c = run()
    with monkeypatch.context() as m:
        m.setattr(flexlm, "_read_checkouts_c", None)
        alone = run()
    return with_c, alone


@needs_c
@pytest.mark.parametrize("path", FLEX, ids=lambda p: p.stem)
def test_fixtures_read_the_same(path, monkeypatch):
    with_c, alone = both(path.read_text(), monkeypatch)
    assert with_c == alone


@needs_c
def test_the_benchmark_output_reads_the_same_and_the_c_reader_reads_every_line(monkeypatch):
    text, n = generate(features=5, checkouts=3000)
    with_c, alone = both(text, monkeypatch)
    assert with_c == alone
    body = text[text.index("\n", text.index("Users of feature_01")) :]
    body = body[: body.index("\nUsers of") + 1]
    got = _flexlm_c.checkouts(body, Checkout)
    assert got is not None and len(got) == body.count(", start ") == n // 5
    assert got == flexlm._fast_checkouts(body)
    assert all(type(c) is Checkout for c in got)


@needs_c
def test_the_c_reader_on_its_own():
    line = "    jo render-1 render-1 (v2024.07) (lic1/27000 311), start Fri 10/20 9:05"
    assert _flexlm_c.checkouts(f"\n{line}, 4 licenses  (linger: 60 / 90), PID: 7 \n", Checkout) == [
        Checkout(
            "jo", "render-1", "render-1", "v2024.07", "lic1", 27000, 311, "Fri 10/20 9:05", 4, 60, 7
        )
    ]
    assert _flexlm_c.checkouts(f"\n{line}\n", Checkout)[0].count == 1
    assert _flexlm_c.checkouts(f"\n{line}", Checkout) == []  # no '\n' after it
    assert _flexlm_c.checkouts(f"{line}\n", Checkout) == []  # no '\n' before it
    big = f"\n{line.replace('311', '9' * 40)}\n"
    assert _flexlm_c.checkouts(big, Checkout)[0].handle == int("9" * 40)
    # not one byte a character: flexlm.py reads it
    assert _flexlm_c.checkouts(f"\n{line.replace('jo', 'жо')}\n", Checkout) is None
    with pytest.raises(TypeError):
        _flexlm_c.checkouts(b"\n", Checkout)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _flexlm_c.checkouts("\n", dict)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _flexlm_c.checkouts("\n")  # type: ignore[call-arg]


def test_a_build_of_another_source_is_not_used(tmp_path, monkeypatch):
    source = tmp_path / "_flexlm_c.c"
    source.write_text("/* the source now */\n")
    now = hashlib.sha256(source.read_bytes()).hexdigest()
    assert not flexlm.is_stale(now, source)
    assert flexlm.is_stale("0" * 64, source)
    assert not flexlm.is_stale("", source)  # built by hand: no claim to check
    assert not flexlm.is_stale("0" * 64, tmp_path / "absent.c")  # installed without source
    # a build is importable (whether or not this install built one beside the sources)
    import sync.sources

    built = ModuleType("sync.sources._flexlm_c")
    built.SOURCE_SHA256 = "0" * 64  # type: ignore[attr-defined]
    built.checkouts = lambda body, cls: []  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sync.sources._flexlm_c", built)
    monkeypatch.setattr(sync.sources, "_flexlm_c", built, raising=False)
    monkeypatch.delenv("LICENSE_SYNC_PURE_PYTHON", raising=False)
    monkeypatch.setattr(flexlm, "is_stale", lambda sha, path: False)
    assert flexlm._c_reader() is built.checkouts  # type: ignore[attr-defined]
    monkeypatch.setattr(flexlm, "is_stale", lambda sha, path: sha == "0" * 64)
    with pytest.warns(RuntimeWarning, match="changed since the C reader was built"):
        assert flexlm._c_reader() is None


def test_pure_python_switch():
    env = {**os.environ, "LICENSE_SYNC_PURE_PYTHON": "1"}
    code = "from sync.sources import flexlm; print(flexlm.ACCELERATED)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    version = subprocess.run(
        [sys.executable, "-m", "sync", "--version"], env=env, capture_output=True, text=True
    )
    assert "pure-Python" in version.stdout, version.stderr


# -- checkout lines of every near shape ----------------------------------------------------

# each part of a checkout line: (shapes it takes, near misses); a token's are drawn
PARTS: dict[str, tuple[list[str], list[str]]] = {
    "lead": (["", "    ", "\t", "  \t "], ["x "]),
    "user": (["jo", "j.o-1_|$'\\)"], ["", "é", "a(b", "a\tb", "a b", "ж", "a\xa0b"]),
    "host": (["render-0001"], ["", "é", "a(b", "a\tb", "ж", "a\xa0b"]),
    "display": (["render-0001", ":0"], ["", "d1 d2", "d(", "é", "a\xa0b"]),
    "sep": ([" "], ["  ", "\t", ""]),
    "cv": (["(v2024.07)", "(v1 (x)", "(v)", "(vé)"], ["(2024)", "(v1", "(v1))", "v1", "(ж)"]),
    "srv": (["lic1", "é", "l i"], ["", "l/i", "l(i", "l)i"]),
    "port": (["27000", "0", "0012", "9" * 25], ["", "1a", "٣", "²", "-1"]),
    "handle": (["311", "0", "9" * 18, "9" * 19, "9" * 25], ["", "1a", "٣", " 1"]),
    "start": (
        ["Fri 10/20 9:05", "Fri 10/20/2023 14:30:00", "F_1 / :", "Fri 1/2 3:04:"],
        ["é 1/2 3:4", "Fri 10/20", "Fri  10/20 9:05", "Fri 10-20 9:05"],
    ),
    "tail": (
        [
            ", 4 licenses",
            ", 1 license",
            "  (linger: 885098 / 1340160)",
            "\t(linger: 5)",
            ", PID: 77",
            " ",
            "\t",
            ", 0 licenses",
            " (linger: 5 x)",
            "",
        ],
        [
            ", 12 licensesX",
            ", x licenses",
            " (linger: x)",
            " (linger: 5",
            ", PID: ",
            "junk",
            ", start Fri 1/2 3:04",
            "(linger: 5 (",
            ", PID: 7 ,",
            ", 2 lic",
        ],
    ),
}
TOKEN_ALPHABET = st.sampled_from([*"az09_.-|$'\\)(é\t ", "ж", "\xa0"])


def line_of(p: dict[str, str]) -> str:
    return (
        f"{p['lead']}{p['user']} {p['host']}{p['sep']}{p['display']} {p['cv']} "
        f"({p['srv']}/{p['port']} {p['handle']}), start {p['start']}{p['tail']}"
    )


GOOD = {name: good[0] for name, (good, _) in PARTS.items()}
NEAR_MISSES = [(name, near) for name, (_, nears) in PARTS.items() for near in nears]


@st.composite
def checkout_line(draw) -> str:
    """A checkout line of the common shape, or with one or two of its parts a near miss."""
    odd = set(draw(st.lists(st.sampled_from(sorted(PARTS)), max_size=2)))
    p = {
        name: draw(st.sampled_from(near if name in odd else good))
        for name, (good, near) in PARTS.items()
    }
    if "user" in odd:
        p["user"] = draw(st.text(alphabet=TOKEN_ALPHABET, max_size=5))
    p["tail"] += draw(st.sampled_from(PARTS["tail"][0]))  # two pieces of tail, in any order
    return line_of(p)


HEADER = (
    "lmutil - Copyright (c) 1989-2023 Flexera. All Rights Reserved.\n"
    "Users of f:  (Total of 100 licenses issued;  Total of 5 licenses in use)\n\n"
)


@needs_c
@pytest.mark.parametrize(
    ("part", "value"), NEAR_MISSES + [(n, v) for n, (g, _) in PARTS.items() for v in g]
)
def test_each_shape_and_near_miss_of_each_part_reads_the_same(part, value, monkeypatch):
    line = line_of({**GOOD, part: value})
    with_c, alone = both(f"{HEADER}{line}\n", monkeypatch)
    assert with_c == alone


@needs_c
@given(line=checkout_line())
@settings(max_examples=600, deadline=None)
def test_one_checkout_line_of_every_near_shape_reads_the_same(line):
    """One line a block: whatever the C reader takes, the block is its alone."""
    with pytest.MonkeyPatch.context() as mp:
        with_c, alone = both(f"{HEADER}{line}\n", mp)
    assert with_c == alone


@needs_c
@given(
    lines=st.lists(
        checkout_line() | st.sampled_from(["", '  "f" v1, vendor: foundry']), max_size=12
    ),
    end=st.sampled_from(["\n", "", "\n\n"]),
)
@settings(max_examples=400, deadline=None)
def test_checkout_lines_of_every_near_shape_read_the_same(lines, end):
    text = HEADER + "\n".join(lines) + end
    with pytest.MonkeyPatch.context() as mp:
        with_c, alone = both(text, mp)
    assert with_c == alone


@needs_c
@given(text=mutated_fixture(FLEX))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_fixtures_read_the_same(text):
    with pytest.MonkeyPatch.context() as mp:
        with_c, alone = both(text, mp)
    assert with_c == alone


@needs_c
@given(text=st.text(max_size=600))
@settings(max_examples=150, deadline=None)
def test_arbitrary_text_reads_the_same(text):
    with pytest.MonkeyPatch.context() as mp:
        with_c, alone = both(
            "Users of f: (Total of 1 license issued; Total of 0 licenses in use)\n" + text, mp
        )
    assert with_c == alone


def test_the_c_reader_under_address_and_undefined_behaviour_sanitizers(tmp_path):
    """Every test above again, with the C reader built with ASan and UBSan."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("needs gcc")
    libs = [
        subprocess.run([gcc, f"-print-file-name={lib}"], capture_output=True, text=True).stdout
        for lib in ("libasan.so", "libubsan.so")
    ]
    libs = [lib.strip() for lib in libs]
    if not all(os.path.isabs(lib) for lib in libs):
        pytest.skip("gcc has no sanitizer runtimes here")
    so = tmp_path / f"_flexlm_c{sysconfig.get_config_var('EXT_SUFFIX')}"
    flags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined"]
    flags += ["-fno-sanitize-recover=all", "-shared", "-fPIC"]
    build = subprocess.run(
        [gcc, *flags, INCLUDE, str(SOURCE), "-o", str(so)], capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr
    env = {
        **os.environ,
        "LICENSE_SYNC_TEST_C_READER": str(so),
        "LD_PRELOAD": " ".join(libs),
        "ASAN_OPTIONS": "detect_leaks=0",
        "PYTHONMALLOC": "malloc",
    }
    env.pop("LICENSE_SYNC_PURE_PYTHON", None)
    argv = ["-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-rs"]
    p = subprocess.run(
        [sys.executable, *argv, "-k", "not sanitizers and not ci_builds"],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert " passed" in p.stdout and "skipped" not in p.stdout, p.stdout[-2000:]
