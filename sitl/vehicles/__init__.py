"""The built-in vehicle simulator: PX4 multicopters as a ground station sees them, over real MAVLink."""
