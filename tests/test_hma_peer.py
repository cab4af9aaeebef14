"""HMA's own tests against amber's HMA-compatible API.

``../shared/peers/hma/OpenMediaMatch/tests`` (beside the project, as CI has it: HMA's
test folder at a pinned ThreatExchange commit, with its license) runs in a subprocess,
unchanged, with amber's stand-in ``OpenMediaMatch`` package (tests/hma_shim) first on the
path: its fixtures build amber on a fresh PostgreSQL schema, its storage calls amber's
library, its client is Flask's test-client interface over amber's app. Every test in
``PASSING`` must pass; ``NOT_RUN`` says why each other test does not apply (docs/hma.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import POSTGRES

ROOT = Path(__file__).resolve().parents[1]
SHIM = ROOT / "tests" / "hma_shim"
PEER = Path(
    os.environ.get("AMBER_HMA_TESTS")
    or ROOT.parent / "shared" / "peers" / "hma" / "OpenMediaMatch" / "tests"
)

#: The HMA tests that pass against amber, by module.
PASSING = {
    "test_api_banks": [
        "test_banks_empty_index",
        "test_banks_create",
        "test_banks_update",
        "test_banks_delete",
        "test_bank_get_content",
        "test_bank_get_content_404",
        "test_banks_add_content",
        "test_bank_update_content",
        "test_bank_update_content_400",
        "test_banks_delete_content",
        "test_banks_add_metadata",
        "test_banks_add_hash_index",
        "test_bank_get_content_with_signals",
        "test_bank_add_content_with_note",
        "test_bank_add_content_without_note_omitted",
        "test_bank_update_content_note",
        "test_bank_add_note_too_long",
        "test_bank_add_hash_with_note",
    ],
    "test_api": [
        "test_status_response",
        "test_status_live_always_alive",
        "test_openapi_documentation_available",
        "test_lookup_success",
        "test_lookup_without_role",
        "test_exchange_api_set_auth",
        "test_exchange_api_schema",
        "test_compare_hashes",
        "test_exchange_delete",
        "test_exchange_get_fetch_status",
    ],
    "test_match_api": [
        "test_raw_lookups",
        "test_lookups",
        "test_raw_lookup_with_bank_filter",
        "test_raw_lookup_with_distance_and_bank_filter",
        "test_lookup_with_bank_filter",
    ],
    "test_e2e_workflow": ["test_add_hashes_and_find_match"],
    "test_hashing": [
        "test_valid_urls",
        "test_invalid_schemes",
        "test_missing_scheme_or_netloc",
        "test_malformed_urls",
        "test_allowed_hostnames",
        "test_empty_allowed_hostnames",
        "test_content_length_validation",
        "test_content_length_validation_default",
        "test_content_length_validation_misconfiguration",
    ],
}

INTERNET = "needs the internet: it banks an image from a github.com URL"
#: The HMA tests that are not run, and why they do not apply.
NOT_RUN = {
    "test_api_banks.py::test_bank_get_content_returns_stored_metadata": INTERNET,
    "test_api_banks.py::test_bank_get_content_include_metadata_false": INTERNET,
    "test_api_banks.py::test_bank_get_content_without_metadata_omitted": INTERNET,
}
#: HMA's test modules that are not run at all, and why.
NOT_RUN_MODULES = {
    "test_database.py": "tests HMA's own PostgreSQL storage (its SQLAlchemy models and "
    "large objects), which amber does not have",
    "test_postgres_storage_impl.py": "tests HMA's storage class (DefaultOMMStore) and its "
    "fetch bookkeeping directly, not its API",
}


@pytest.mark.slow
@pytest.mark.skipif(
    POSTGRES == "off", reason="HMA's tests run on PostgreSQL (AMBER_TEST_POSTGRES=off)"
)
def test_hma_tests_pass_against_amber(tmp_path: Path) -> None:
    assert PEER.is_dir(), (
        f"HMA's tests are not at {PEER}: CI has ../shared/peers/hma beside the project "
        "(or set AMBER_HMA_TESTS to their folder)"
    )
    present = {p.name for p in PEER.glob("test_*.py")}
    assert present == {f"{m}.py" for m in PASSING} | set(NOT_RUN_MODULES), present
    report = tmp_path / "hma.xml"
    where = PEER.relative_to(PEER.parents[1]).as_posix()  # node ids are under --rootdir
    deselect = [arg for test in NOT_RUN for arg in ("--deselect", f"{where}/{test}")]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SHIM), os.environ.get("PYTHONPATH")])),
        "PYTHONDONTWRITEBYTECODE": "1",  # nothing written into the peer's folder
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "AMBER_TEST_POSTGRES": POSTGRES,
        "AMBER_HMA_TESTS": str(PEER),
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *(str(PEER / f"{module}.py") for module in PASSING),
            *deselect,
            "-p",
            "no:cacheprovider",
            "-c",
            str(SHIM / "pytest.ini"),
            "--rootdir",
            str(PEER.parents[1]),
            "--junitxml",
            str(report),
            "-q",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    outcomes = _outcomes(report) if report.exists() else {}
    expected = {f"{module}::{name}" for module, names in PASSING.items() for name in names}
    failed = {test: why for test, why in outcomes.items() if why != "passed"}
    assert not failed and set(outcomes) == expected, (
        f"not passed: {sorted(failed)}\nmissing: {sorted(expected - set(outcomes))}\n"
        f"unexpected: {sorted(set(outcomes) - expected)}\n"
        f"{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
    )
    assert run.returncode == 0, run.stdout[-6000:]


def test_tests_not_run_are_named_and_explained() -> None:
    if not PEER.is_dir():
        pytest.skip(f"HMA's tests are not at {PEER}")
    for test, why in NOT_RUN.items():
        module, name = test.split("::")
        assert f"def {name}(" in (PEER / module).read_text(encoding="utf-8"), test
        assert why
    for module in NOT_RUN_MODULES:
        assert (PEER / module).is_file(), module


def _outcomes(report: Path) -> dict[str, str]:
    """Each test case of a JUnit report (``module::name``) and how it ended."""
    out = {}
    for case in ET.parse(report).iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        ended = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        out[f"{module}::{case.get('name')}"] = ended
    return out
