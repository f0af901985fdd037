"""Identities, their topics and ACL lines, and the --broker address: plain values, no broker."""

from __future__ import annotations

import re

import pytest
from paho.mqtt.client import topic_matches_sub

from groundstation.link import identity as ids
from groundstation.link.broker import acl_text
from missions.errors import UserError
from vision.bus.address import BrokerAddress, parse_broker_url


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("station-algeciras", ids.Identity(ids.Role.STATION, site="algeciras")),
        ("unit-algeciras-1", ids.Identity(ids.Role.UNIT, site="algeciras", unit=1)),
        ("unit-tarifa-coast-12", ids.Identity(ids.Role.UNIT, site="tarifa-coast", unit=12)),
        ("station-kilindini-mombasa", ids.Identity(ids.Role.STATION, site="kilindini-mombasa")),
        ("bridge-algeciras", ids.Identity(ids.Role.BRIDGE, site="algeciras")),
        ("bridge-tarifa-coast", ids.Identity(ids.Role.BRIDGE, site="tarifa-coast")),
        ("hq", ids.Identity(ids.Role.HQ)),
    ],
)
def test_an_identity_reads_back_from_its_name(name, expected):
    assert ids.parse(name) == expected
    assert expected.name == name


@pytest.mark.parametrize(
    "name",
    ["", "HQ", "unit-algeciras", "unit-algeciras-0", "unit--1", "station-", "station-Algeciras", "drone-1", "hq-2",
     "bridge", "bridge-", "bridge-Algeciras", "bridge-algeciras/1"],
)  # fmt: skip
def test_a_name_outside_the_scheme_is_refused_quoting_it(name):
    expected = rf"identity '{re.escape(name)}': expected station-<site>, unit-<site>-<n>, bridge-<site> or hq"
    with pytest.raises(UserError, match=expected):
        ids.parse(name)


@pytest.mark.parametrize(
    ("who", "grants"),
    [
        (
            ids.unit("algeciras", 2),
            {("read", "borderwatch/v1/algeciras/unit-2/commands/#")}
            | {
                ("write", f"borderwatch/v1/algeciras/unit-2/{c}{tail}")
                for c in ids.UNIT_CHANNELS
                for tail in ("", "/#")
            },
        ),
        (
            ids.station("algeciras"),
            {("read", "borderwatch/v1/algeciras/#"), ("write", "borderwatch/v1/algeciras/+/commands/#")},
        ),
        (ids.hq(), {("read", "borderwatch/v1/#")}),
        (
            ids.bridge("algeciras"),
            {
                ("write", f"borderwatch/v1/algeciras/+/{c}{tail}")
                for c in ("alerts", "tracks", "status")
                for tail in ("", "/#")
            },
        ),
    ],
)
def test_each_identity_gets_the_documented_grants(who, grants):
    assert {(str(access), topic) for access, topic in who.grants()} == grants


def may(who: ids.Identity, access: str, topic: str) -> bool:
    """What mosquitto decides for ``topic`` under ``who``'s ACL lines (the same wildcard matching)."""
    return any(str(a) == access and topic_matches_sub(pattern, topic) for a, pattern in who.grants())


@pytest.mark.parametrize(
    ("who", "access", "topic", "allowed"),
    [
        (ids.bridge("algeciras"), "write", "borderwatch/v1/algeciras/unit-1/alerts", True),
        (ids.bridge("algeciras"), "write", "borderwatch/v1/algeciras/unit-12/tracks", True),
        (ids.bridge("algeciras"), "write", "borderwatch/v1/algeciras/unit-1/status", True),
        (ids.bridge("algeciras"), "write", "borderwatch/v1/tarifa/unit-1/alerts", False),
        (ids.bridge("algeciras"), "write", "borderwatch/v1/algeciras-port/unit-1/alerts", False),
        (ids.bridge("algeciras"), "write", "borderwatch/v1/algeciras/unit-1/detections", False),
        (ids.bridge("algeciras"), "write", "borderwatch/v1/algeciras/unit-1/evidence", False),
        (ids.bridge("algeciras"), "write", "borderwatch/v1/algeciras/unit-1/commands/land", False),
        (ids.bridge("algeciras"), "read", "borderwatch/v1/algeciras/unit-1/alerts", False),
        (ids.bridge("algeciras"), "read", "borderwatch/v1/algeciras/unit-1/commands/land", False),
        (ids.hq(), "read", "borderwatch/v1/tarifa/unit-1/alerts", True),
        (ids.hq(), "write", "borderwatch/v1/tarifa/unit-1/alerts", False),
        (ids.hq(), "write", "borderwatch/v1/tarifa/unit-1/commands/land", False),
    ],
)
def test_a_bridge_only_writes_its_own_sites_bridged_channels_and_hq_only_reads(who, access, topic, allowed):
    assert may(who, access, topic) is allowed


def test_the_acl_gives_a_name_outside_the_scheme_nothing():
    text = acl_text(["unit-algeciras-1", "mallory"])

    assert "user unit-algeciras-1\ntopic write borderwatch/v1/algeciras/unit-1/status/#\n" in text
    assert "user mallory" not in text
    assert "mallory: not a borderwatch identity" in text


@pytest.mark.parametrize("bad", ["Algeciras", "al geciras", "-algeciras", "algeciras-", "al/geciras", "al+", "#"])
@pytest.mark.parametrize("make", [ids.station, ids.bridge])
def test_a_site_that_cannot_be_a_topic_level_is_refused(bad, make):
    with pytest.raises(UserError, match="lowercase letters, digits and '-'"):
        make(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtts://broker.example:8883", BrokerAddress("broker.example", 8883)),
        ("mqtts://10.0.0.5:18883", BrokerAddress("10.0.0.5", 18883)),
        ("mqtts://broker.example", BrokerAddress("broker.example", 8883)),
        ("mqtts://[::1]:9000", BrokerAddress("::1", 9000)),
    ],
)
def test_a_broker_url_is_parsed(text, expected):
    assert parse_broker_url(text) == expected
    assert parse_broker_url(expected.url) == expected


@pytest.mark.parametrize(
    "text",
    ["mqtt://broker.example:1883", "broker.example:8883", "mqtts://", "mqtts://host:99999", "mqtts://host:x",
     "mqtts://host:8883/topic", "mqtts://user@host:8883", ""],
)  # fmt: skip
def test_a_bad_broker_url_is_one_error_quoting_it(text):
    with pytest.raises(UserError, match=rf"broker '{text}': .*mqtts://HOST:PORT"):
        parse_broker_url(text)
