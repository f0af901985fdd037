"""Simulated vehicles, synthetic camera world, PX4 SITL launchers and pytest fixtures. (Issue 3.)"""
