"""Where the shared test vectors live: $METERLINE_SHARED_DATA, else `../shared/data` beside the checkout, else
/work/shared/data. A missing directory fails the tests that need it (never a silent skip)."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shared_data() -> Path:
    candidates = [
        Path(os.environ["METERLINE_SHARED_DATA"]) if os.environ.get("METERLINE_SHARED_DATA") else None,
        ROOT.parent / "shared" / "data",
        Path("/work/shared/data"),
    ]
    for candidate in candidates:
        if candidate is not None and (candidate / "usage-payloads").is_dir():
            return candidate
    raise FileNotFoundError("The shared test vectors are missing: set METERLINE_SHARED_DATA to shared/data.")


USAGE_PAYLOADS = shared_data() / "usage-payloads"


def usage_vector(name: str) -> dict:
    """One provider usage vector: {"format", "payload", "expected"}."""
    import json

    return json.loads((USAGE_PAYLOADS / f"{name}.json").read_text())
