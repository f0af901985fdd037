"""Every module of missions and vision imports on a companion computer's install: none of them
pulls in Qt, torch, ultralytics or MAVSDK. `make test-lean` also runs this where the first three
are not even installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The ultralytics adapter is the one module allowed to need ultralytics, and with it torch.
ADAPTER = "vision.detectors.yolo"
NOT_ONBOARD = ("PyQt6", "torch", "ultralytics", "mavsdk")

# A fresh interpreter: this one may already hold torch or Qt from other tests.
IMPORT_ALL = f"""
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
names = [m.name for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".") if m.name != {ADAPTER!r}]
for name in names:
    importlib.import_module(name)
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in {NOT_ONBOARD!r})
print(json.dumps({{"imported": names, "loaded": loaded}}))
"""


@pytest.mark.parametrize(
    ("package", "one_of_them"), [("missions", "missions.planners.patrol"), ("vision", "vision.onboard")]
)
def test_every_module_imports_without_qt_torch_ultralytics_or_mavsdk(package, one_of_them):
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL, package], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert one_of_them in result["imported"]
    assert result["loaded"] == []
