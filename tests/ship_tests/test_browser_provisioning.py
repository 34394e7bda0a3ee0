"""`.ci/browser`, which `make test` runs: it never fails the build, and names what is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "browser"


def _run(path: str, **env: str) -> subprocess.CompletedProcess[str]:
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run(
        [bash, str(SCRIPT)],
        env={"PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_chromium_or_apt_it_says_exactly_what_is_missing(tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # a PATH with neither chromium nor apt-get
    bare.mkdir()
    for tool in ("id",):
        found = shutil.which(tool)
        assert found is not None
        os.symlink(found, bare / tool)
    result = _run(str(bare))
    assert result.returncode == 0  # the browser test reports it; the build goes on
    assert "headless Chromium is missing (no 'chromium' on PATH)" in result.stderr
    assert "AUTOLR_SKIP_BROWSER=1" in result.stderr


def test_a_chromium_on_path_is_left_alone(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "chromium").write_text("#!/bin/sh\nexit 0\n")
    (fake / "chromium").chmod(0o755)
    result = _run(str(fake))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_skip_switch_is_honoured_and_said() -> None:
    result = _run("/nonexistent", AUTOLR_SKIP_BROWSER="1")
    assert result.returncode == 0
    assert "AUTOLR_SKIP_BROWSER=1" in result.stdout
