"""Video to alerts: sources, detectors, tracking, geolocation, alerts, evidence. (Issue 4.)"""
