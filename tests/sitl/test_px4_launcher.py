"""Starting real PX4 SITL: command construction and error messages without PX4, a live run with it."""

from __future__ import annotations

import pytest

from groundstation.cli import main
from missions.errors import UserError
from sitl.px4 import NO_BUILD_REASON, find_build_dir, px4_instances, resolve_build_dir

HOMES = [(36.128, -5.438), (36.128, -5.43794)]


@pytest.fixture
def fake_build(tmp_path):
    build = tmp_path / "PX4-Autopilot" / "build" / "px4_sitl_default"
    (build / "bin").mkdir(parents=True)
    (build / "bin" / "px4").write_text("#!/bin/sh\n")
    (build / "etc" / "init.d-posix").mkdir(parents=True)
    (build / "etc" / "init.d-posix" / "rcS").write_text("")
    return build


def test_a_checkout_or_its_build_folder_both_resolve(fake_build):
    assert resolve_build_dir(fake_build) == fake_build
    assert resolve_build_dir(fake_build.parents[1]) == fake_build


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


def test_no_px4_dir_says_how_to_set_it(monkeypatch):
    monkeypatch.delenv("PX4_DIR", raising=False)
    with pytest.raises(UserError, match="PX4_DIR"):
        resolve_build_dir(None)


def test_sih_instances_follow_px4s_multi_vehicle_scheme(fake_build):
    first, second = px4_instances(fake_build, 2, HOMES, speed_factor=5)
    assert first.argv == (str(fake_build / "bin" / "px4"), "-i", "0", "-d", str(fake_build / "etc"))
    assert second.argv[1:3] == ("-i", "1")
    assert (first.cwd, second.cwd) == (fake_build / "instance_0", fake_build / "instance_1")
    assert (first.system_id, first.port, second.system_id, second.port) == (1, 14540, 2, 14541)
    assert first.env["PX4_SIM_MODEL"] == "sihsim_quadx" and first.env["PX4_SYS_AUTOSTART"] == "10040"
    assert first.env["PX4_SIM_SPEED_FACTOR"] == "5"
    assert second.env["PX4_HOME_LON"] == "-5.4379400"


def test_gazebo_instances_share_one_world_side_by_side(fake_build):
    instances = px4_instances(fake_build, 3, HOMES * 2, gazebo=True)
    assert {i.env["PX4_SIM_MODEL"] for i in instances} == {"gz_x500"}
    assert [i.env["PX4_GZ_MODEL_POSE"] for i in instances] == ["0,0", "5,0", "10,0"]
    assert all(i.env["HEADLESS"] == "1" for i in instances)


def test_sim_command_reports_a_bad_px4_folder_in_one_line(tmp_path, capsys):
    assert main(["sim", "--px4", str(tmp_path), "--duration", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(tmp_path) in err and "bin/px4" in err


@pytest.mark.px4
@pytest.mark.skipif(find_build_dir() is None, reason=NO_BUILD_REASON)
def test_real_px4_sitl_answers_on_14540():
    from sitl.ground import GroundLink
    from sitl.px4 import Px4Fleet

    build = find_build_dir()
    with GroundLink(14540) as g, Px4Fleet(px4_instances(build, 1, HOMES[:1])):
        hb = g.recv("HEARTBEAT", 60.0, where=lambda m: m.get_srcComponent() == 1)
        assert hb is not None and hb.autopilot == 12
