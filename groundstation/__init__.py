"""The ground station: the borderwatch CLI, the fleet link, the desktop app and reports."""
