"""What only a real ``amber`` process shows: the console script's entry point, a terminal
for the progress bar, Ctrl-C, and running without the optional extras."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from amber import __version__
from amber.synthetic import photo
from conftest import sqlite_only

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
Process = Callable[..., subprocess.CompletedProcess[str]]

#: Put first on PYTHONPATH, this makes the packages named in AMBER_TEST_MISSING
#: unimportable, as if the extra that installs them had not been installed.
MISSING = """
import os
import sys
from importlib.abc import MetaPathFinder

MISSING = set(os.environ["AMBER_TEST_MISSING"].split(","))


class Missing(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in MISSING:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, Missing())
"""


def test_the_console_script_runs_amber_cli_main(tmp_path: Path) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = scripts["amber"].partition(":")
    code = f"import sys; sys.argv = ['amber', 'version']; from {module} import {function}; "
    code += f"{function}()"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == __version__


def test_bad_input_in_a_process_is_one_line_and_exit_2(amber_process: Process) -> None:
    result = amber_process("bank", "add", "nope", "x.png")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: ") and "no bank called 'nope'" in line
    assert "Traceback" not in result.stderr + result.stdout and result.stdout == ""


def _default_ctrl_c() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_130_without_a_traceback(database: str, tmp_path: Path) -> None:
    """Interrupted while reading posts from standard input: exit 130, no traceback."""
    env = {**os.environ, "AMBER_DB": database, "AMBER_VAULT": str(tmp_path / "vault")}
    process = subprocess.Popen(
        [sys.executable, "-m", "amber", "scan", "-", "--format", "jsonl", "--workers", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
        # A shell without job control starts background jobs with Ctrl-C ignored, and an
        # ignored signal stays ignored across exec: amber would rightly never see it.
        preexec_fn=_default_ctrl_c,
    )
    assert process.stdin is not None and process.stdout is not None
    # Decisions are saved, and printed, 64 at a time: the first line proves the scan runs
    # and is now waiting for more input.
    process.stdin.write(
        "".join(json.dumps({"id": f"p{n}", "text": "hi"}) + "\n" for n in range(64))
    )
    process.stdin.flush()
    line = process.stdout.readline()
    if not line:  # it ended: show why
        process.kill()
        raise AssertionError(process.communicate()[1])
    assert json.loads(line)["post_id"] == "p0"
    process.send_signal(signal.SIGINT)
    # Standard input stays open until amber has exited: closing it first (communicate()
    # does) would let the scan end at EOF before the signal lands, and exit 0.
    try:
        process.wait(timeout=120)
    finally:
        process.kill()
        _, stderr = process.communicate()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr


def test_jsonl_goes_to_stdout_while_the_progress_bar_shows(database: str, tmp_path: Path) -> None:
    """The progress bar must never capture stdout: pipe data and terminal messages apart."""
    import pty

    folder = tmp_path / "many"
    folder.mkdir()
    for seed in range(40):
        photo(seed, 900, 700).save(folder / f"{seed:02}.jpg", quality=90)
    primary, secondary = pty.openpty()  # stderr is a terminal, as for a person at a shell
    shown = bytearray()

    def read_terminal() -> None:  # as a terminal does, or the bar blocks on a full buffer
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=read_terminal)
    reader.start()
    env = {**os.environ, "AMBER_DB": database, "COLUMNS": "120"}
    try:
        with (tmp_path / "out.jsonl").open("w") as out:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "amber",
                    "scan",
                    str(folder),
                    "--format",
                    "jsonl",
                    "--workers",
                    "1",
                ],
                stdout=out,
                stderr=secondary,
                env=env,
                timeout=300,
                check=True,
            )
    finally:
        os.close(secondary)
        reader.join(timeout=60)
        os.close(primary)
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(line)["post_id"] for line in lines] == [f"{s:02}.jpg" for s in range(40)]
    assert b"scanning" in shown and b"post_id" not in shown


def _without(tmp_path: Path, *packages: str) -> dict[str, str]:
    """An environment in which ``packages`` cannot be imported."""
    shim = tmp_path / "shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(MISSING)
    path = os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "AMBER_TEST_MISSING": ",".join(packages)}


def _run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "amber", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def test_the_shim_makes_a_package_missing(tmp_path: Path) -> None:
    env = _without(tmp_path, "fastapi")
    result = subprocess.run(
        [sys.executable, "-c", "import fastapi"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 1 and "No module named 'fastapi'" in result.stderr


def test_serve_without_the_serve_extra_says_what_to_install(tmp_path: Path) -> None:
    env = _without(tmp_path, "fastapi", "uvicorn")
    result = _run(env, tmp_path, "serve", "--db", str(tmp_path / "a.db"), "--port", "1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: this needs the 'uvicorn' package, which amber installs with its 'serve' "
        "extra: pip install 'amber[serve]'"
    ]


def test_a_postgresql_url_without_psycopg_says_what_to_install(tmp_path: Path) -> None:
    env = _without(tmp_path, "psycopg", "psycopg_binary")
    result = _run(env, tmp_path, "bank", "list", "--db", "postgresql://nobody@127.0.0.1:1/x")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: this needs the 'psycopg' package, which amber installs with its 'postgres' "
        "extra: pip install 'amber[postgres]'"
    ]


@sqlite_only  # the demo makes its own SQLite database
def test_the_demo_runs_without_the_extras(tmp_path: Path, databases: object) -> None:
    env = _without(
        tmp_path,
        "fastapi",
        "starlette",
        "uvicorn",
        "multipart",
        "python_multipart",
        "jinja2",
        "prometheus_client",
        "psycopg",
        "psycopg_binary",
    )
    result = _run(env, tmp_path, "demo", "--dir", str(tmp_path / "d"))
    assert result.returncode == 0, result.stderr
    assert "6 copies of the known photo were removed" in result.stdout
    assert "2 copies of the known video were removed" in result.stdout
