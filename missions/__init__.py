"""Patrol planning domain: sites in a local metric frame, planners, plan files. No I/O beyond files."""
