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

# The station's signing key and trust store: a folder of the test run's own, never the user's.
_KEYS = Path(os.environ.get("PYTEST_KEYS_DIR") or __import__("tempfile").mkdtemp(prefix="borderwatch-test-keys-"))
os.environ.setdefault("BORDERWATCH_KEY", str(_KEYS / "keys" / "signing.key"))
os.environ.setdefault("BORDERWATCH_TRUST", str(_KEYS / "trust"))
