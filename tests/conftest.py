import os
from pathlib import Path

# ultralytics reads these at its first import, wherever in the run that happens: no network, no
# auto-installs, and its settings inside the project rather than in the user's home.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(__file__).resolve().parent.parent / ".ultralytics"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QTWEBENGINE_CHROMIUM_FLAGS", "--no-sandbox")

pytest_plugins = ["sitl.pytest_plugin"]
