"""AIS: what vessels say of themselves, read from NMEA 0183 and matched to what the drones see.

``model`` holds the types every part shares: the reports decoded from sentences, the targets of
the vessel table (dead-reckoned between reports) and the track fixes the matcher takes from the
video pipeline. ``decode`` turns sentences into reports (pyais), ``sources`` reads them from UDP,
TCP or a log file, ``table`` keeps the vessel table, ``matching`` binds tracks to MMSIs.
"""
