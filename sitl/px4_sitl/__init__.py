"""Real PX4 SITL: launching SIH instances, reading their true state for cameras, and holding the simulator to PX4."""
