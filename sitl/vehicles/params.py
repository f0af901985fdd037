"""The few PX4 parameters a ground station reads or sets on a multicopter.

PX4 sends integer parameters byte-wise in PARAM_VALUE's float field
(MAV_PROTOCOL_CAPABILITY_PARAM_ENCODE_BYTEWISE), and MAVSDK decodes them so.
"""

from __future__ import annotations

import struct

from sitl.vehicles.model import VehicleConfig

REAL32, INT32 = 9, 6


def encode(value: float, param_type: int) -> float:
    if param_type == INT32:
        return struct.unpack("<f", struct.pack("<i", int(value)))[0]
    return float(value)


def decode(raw: float, param_type: int) -> float:
    if param_type == INT32:
        return float(struct.unpack("<i", struct.pack("<f", raw))[0])
    return raw


def px4_params(config: VehicleConfig) -> dict:
    """name -> [value, MAV_PARAM_TYPE], in PX4's names and units."""
    return {
        "MIS_TAKEOFF_ALT": [config.takeoff_alt_m, REAL32],
        "MPC_XY_CRUISE": [config.cruise_speed_m_s, REAL32],
        "RTL_RETURN_ALT": [config.rtl_alt_m, REAL32],
        "GF_ACTION": [3 if config.fence_action == "return" else 2, INT32],
        "NAV_DLL_ACT": [0, INT32],  # no datalink-loss failsafe: a running mission goes on
        "COM_DISARM_PRFLT": [config.auto_disarm_s, REAL32],
        "BAT_LOW_THR": [config.low_battery_pct / 100.0, REAL32],
        "SYS_AUTOSTART": [10040, INT32],
    }
