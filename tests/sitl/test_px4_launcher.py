"""Starting real PX4 SITL: finding the build, the command lines, and every way a start goes wrong —
one line naming the folder or port, nothing left running, nothing written into the build."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time

import pytest

from groundstation.commands.cli import main
from missions.errors import UserError
from sitl.px4_sitl.launcher import (
    SHARED_BUILD,
    Px4Fleet,
    Px4StartError,
    claimed_instances,
    find_build_dir,
    link_commands,
    px4_instances,
    resolve_build_dir,
)

HOMES = [(36.128, -5.438), (36.128, -5.43794)]


def fake_build(root, script: str):
    """A folder shaped like build/px4_sitl_default whose `px4` is the shell `script` given."""
    build = root / "PX4-Autopilot" / "build" / "px4_sitl_default"
    (build / "bin").mkdir(parents=True)
    px4 = build / "bin" / "px4"
    px4.write_text("#!/bin/sh\n" + script + "\n")
    px4.chmod(px4.stat().st_mode | stat.S_IXUSR)
    for name in ("px4-param", "px4-commander"):
        (build / "bin" / name).write_text("px4")  # links copied as files, as in ../shared/px4
    (build / "etc" / "init.d-posix").mkdir(parents=True)
    (build / "etc" / "init.d-posix" / "rcS").write_text("")
    return build


@pytest.fixture
def build(tmp_path):
    return fake_build(tmp_path, "exit 0")


def test_a_checkout_or_its_build_folder_both_resolve(build):
    assert resolve_build_dir(build) == build.resolve()
    assert resolve_build_dir(build.parents[1]) == build.resolve()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda tmp: tmp / "nowhere", "no such folder"),
        (lambda tmp: tmp, "no bin/px4 here or in build/px4_sitl_default"),
    ],
)
def test_a_wrong_build_folder_is_a_user_error_naming_path_and_file(tmp_path, make, expected):
    path = make(tmp_path)
    with pytest.raises(UserError, match=expected) as info:
        resolve_build_dir(path)
    assert str(path) in str(info.value)


def test_a_px4_that_is_not_executable_is_named(build):
    (build / "bin" / "px4").chmod(0o644)
    with pytest.raises(UserError, match="bin/px4: not executable"):
        resolve_build_dir(build)


def test_px4_dir_comes_first_and_a_bad_one_is_an_error_not_a_skip(monkeypatch, tmp_path, build):
    monkeypatch.setenv("PX4_DIR", str(build))
    assert find_build_dir() == build.resolve()
    monkeypatch.setenv("PX4_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="nowhere"):
        find_build_dir()


def test_without_px4_dir_the_shared_build_beside_the_checkout_is_used(monkeypatch):
    monkeypatch.delenv("PX4_DIR", raising=False)
    found = find_build_dir()
    assert found == (SHARED_BUILD.resolve() if (SHARED_BUILD / "bin" / "px4").is_file() else None)


def test_instances_follow_px4s_multi_vehicle_scheme_and_work_outside_the_build(build, tmp_path):
    root = tmp_path / "work"
    first, second = px4_instances(build, HOMES, root, first_instance=3, speed_factor=5)
    assert first.argv == (str(root / "bin" / "px4"), "-i", "3", "-d", str(build / "etc"))
    assert second.argv[1:3] == ("-i", "4")
    assert (first.cwd, second.cwd) == (root / "instance_3", root / "instance_4")
    assert (first.system_id, first.port, first.gcs_port, first.payload_port) == (4, 14543, 18573, 14033)
    assert first.connect_url == "udpin://0.0.0.0:14543"
    assert first.env["PX4_SIM_MODEL"] == "sihsim_quadx" and first.env["PX4_SYS_AUTOSTART"] == "10040"
    assert first.env["PX4_SIM_SPEED_FACTOR"] == "5"
    assert first.env["PX4_PARAM_SDLOG_MODE"] == "-1" and first.env["PX4_PARAM_SYS_FAILURE_EN"] == "1"
    assert second.env["PX4_HOME_LON"] == "-5.4379400"


def test_more_instances_than_px4s_ports_tell_apart_is_a_user_error(build, tmp_path):
    with pytest.raises(UserError, match="at most 10"):
        px4_instances(build, HOMES * 3, tmp_path, first_instance=5)


def test_gazebo_instances_share_one_world_side_by_side(build, tmp_path):
    instances = px4_instances(build, HOMES + HOMES[:1], tmp_path, gazebo=True)
    assert {i.env["PX4_SIM_MODEL"] for i in instances} == {"gz_x500"}
    assert [i.env["PX4_GZ_MODEL_POSE"] for i in instances] == ["0,0", "5,0", "10,0"]
    assert all(i.env["HEADLESS"] == "1" for i in instances)


def test_every_command_of_the_build_is_linked_to_its_px4(build, tmp_path):
    link_commands(build, tmp_path)
    assert os.readlink(tmp_path / "bin" / "px4") == str(build / "bin" / "px4")
    assert os.readlink(tmp_path / "bin" / "px4-param") == "px4"
    assert (tmp_path / "bin" / "px4-commander").resolve() == (build / "bin" / "px4").resolve()


def _no_process_left(marker: str) -> bool:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return marker not in ps


def test_a_build_that_exits_at_once_is_one_error_with_its_last_words_and_nothing_left(tmp_path):
    broken = fake_build(tmp_path, 'echo "ERROR [px4] Startup script returned with return value: 256"; exit 1')
    with claimed_instances(1) as first:
        fleet = Px4Fleet(broken, HOMES[:1], first_instance=first)
        with pytest.raises(Px4StartError) as info:
            fleet.start()
    message = str(info.value)
    assert f"PX4 instance {first}" in message and "exited with code 1" in message and str(broken) in message
    assert "Startup script returned with return value: 256" in message
    assert not fleet.root.exists(), "its temporary folder is gone"
    assert sorted(p.name for p in broken.iterdir()) == ["bin", "etc"], "nothing was written into the build"


def test_a_px4_that_never_says_it_is_ready_is_stopped_after_the_timeout(tmp_path):
    silent = fake_build(tmp_path, "exec sleep 600  # borderwatch-silent-px4")
    with claimed_instances(1) as first:
        fleet = Px4Fleet(silent, HOMES[:1], first_instance=first, ready_timeout_s=1.5)
        started = time.monotonic()
        with pytest.raises(Px4StartError, match=f"PX4 instance {first} .* said nothing on UDP {14030 + first}"):
            fleet.start()
    assert time.monotonic() - started < 10
    assert _no_process_left("sleep 600"), "the silent PX4 was stopped"


def test_ports_held_by_another_program_are_named_before_anything_starts(build):
    with claimed_instances(1) as first, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("0.0.0.0", 18570 + first))
        fleet = Px4Fleet(build, HOMES[:1], first_instance=first)
        with pytest.raises(UserError, match=f"UDP port {18570 + first} is taken: PX4 instance {first} needs it"):
            fleet.start()
        assert fleet.poll() == []


def test_sim_command_reports_a_bad_px4_folder_in_one_line(tmp_path, capsys):
    assert main(["sim", "--px4", str(tmp_path), "--duration", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path) in err and "bin/px4" in err


def test_sim_command_reports_a_build_that_does_not_start_in_one_line_and_exits_1(tmp_path):
    broken = fake_build(tmp_path, 'echo "ERROR [init] simulator_sih failed to start"; exit 1')
    done = subprocess.run(
        [sys.executable, "-m", "groundstation.commands.cli", "sim", "--px4", str(broken), "--duration", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "simulator_sih failed to start" in lines[0] and str(broken) in lines[0]


@pytest.mark.px4
@pytest.mark.slow
def test_real_px4_sitl_is_ready_answers_and_leaves_its_build_untouched(px4_fleet):
    from sitl.ground import GroundLink

    build = find_build_dir()
    before = sorted(p.name for p in build.rglob("*"))
    fleet = px4_fleet(1)
    inst = fleet.instances[0]
    with GroundLink(inst.port) as g:
        hb = g.recv("HEARTBEAT", 10.0, where=lambda m: m.get_srcComponent() == 1)
        assert hb is not None and hb.autopilot == 12 and hb.get_srcSystem() == inst.system_id
    assert inst.cwd.is_relative_to(fleet.root) and (inst.cwd / "parameters.bson").exists()
    fleet.stop()
    assert not fleet.root.exists()
    assert sorted(p.name for p in build.rglob("*")) == before
