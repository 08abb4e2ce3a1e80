"""The project's bash scripts on a machine unlike the one that wrote them: the Debian
mirror is found in either apt sources format, and a failing step always says where."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.unit

BUILD = REPO / "scripts" / "build-images.sh"


def _mirror(apt_etc: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(BUILD), "--print-mirror"], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "APT_ETC": str(apt_etc)},
                          timeout=30)


@pytest.mark.parametrize("layout", ["deb822", "one-line", "both", "none"])
def test_the_debian_mirror_is_read_from_either_sources_format(tmp_path: Path,
                                                              layout: str) -> None:
    (tmp_path / "sources.list.d").mkdir()
    if layout in ("deb822", "both"):  # a new Debian machine: no sources.list at all
        (tmp_path / "sources.list.d" / "debian.sources").write_text(
            "Types: deb\n# a comment\nURIs: http://mirror.deb822.example/debian\n"
            "Suites: bookworm bookworm-updates\nComponents: main\n\n"
            "Types: deb\nURIs: http://mirror.deb822.example/debian-security\n")
        (tmp_path / "sources.list.d" / "other.sources").write_text(
            "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\n")
    if layout in ("one-line", "both"):
        (tmp_path / "sources.list").write_text(
            "# deb http://commented.example/debian bookworm main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://mirror.oneline.example/debian/ "
            "bookworm main\n")
    proc = _mirror(tmp_path)
    assert proc.returncode == 0, proc.stderr
    expected = {"deb822": "http://mirror.deb822.example/debian",
                "one-line": "http://mirror.oneline.example/debian/",
                "both": "http://mirror.oneline.example/debian/", "none": ""}[layout]
    assert proc.stdout.strip() == expected


def test_a_failing_command_names_the_script_the_line_and_the_command(tmp_path: Path
                                                                     ) -> None:
    script = tmp_path / "step.sh"
    script.write_text(f'source "{REPO / "scripts" / "lib.sh"}"\n'
                      'echo before\n'
                      'value=$(grep -h nothing /does/not/exist | head -n1)\n'
                      'echo "never reached: $value"\n')
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert proc.stdout == "before\n"
    assert "step.sh: failed (exit 2) at line 3" in proc.stderr, proc.stderr


def test_run_logged_prints_a_failed_steps_output(tmp_path: Path) -> None:
    script = tmp_path / "install.sh"
    script.write_text(f'source "{REPO / "scripts" / "lib.sh"}"\n'
                      'run_logged "the quiet step" bash -c "echo fine"\n'
                      'run_logged "the broken step" bash -c "echo why it broke; exit 3"\n')
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3
    assert "fine" not in proc.stdout + proc.stderr
    assert "== the broken step failed (exit 3): bash -c" in proc.stderr
    assert "why it broke" in proc.stderr


def test_docker_builds_carry_no_attestations_and_kind_loads_an_archive(tmp_path: Path
                                                                      ) -> None:
    """kind#3795: with Docker 29's containerd image store, `kind load docker-image` fails
    on images with provenance attestations. The build leaves them out (BuildKit) and
    kind-up loads a `docker save` archive."""
    calls = tmp_path / "calls"
    docker = tmp_path / "docker"
    docker.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n'
                      'case "$1" in image) echo 620000000 ;; esac\nexit 0\n')
    docker.chmod(0o755)
    proc = subprocess.run(
        ["bash", str(BUILD), "serve"], capture_output=True, text=True, timeout=120,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "ENGINE": "docker",
             "PY": str(Path(__import__("sys").executable)), "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    build = next(line for line in calls.read_text().splitlines()
                 if line.startswith("build "))
    assert "--provenance=false" in build and "--sbom=false" in build
    commands = [line.strip() for line in (REPO / "scripts" / "kind-up.sh").read_text()
                .splitlines() if not line.lstrip().startswith("#")]
    assert any(c.startswith("kind load image-archive") for c in commands)
    assert not any("kind load docker-image" in c for c in commands)
