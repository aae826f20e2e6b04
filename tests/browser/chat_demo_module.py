"""examples/chat/app.py loaded as a module, for the test apps that serve the demo with other
options (``fastsio run tests/browser/<app>.py:sio`` puts this directory on ``sys.path``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

DEMO = Path(__file__).resolve().parents[2] / "examples" / "chat" / "app.py"


def load_chat_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fastsio_chat_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
