"""The PyQt6 desktop app: the only package of borderwatch that imports Qt."""
