"""The demo: simulated drones and cameras flown by the headless runner or through the app."""
