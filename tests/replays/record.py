"""Re-record the runs in this folder on the emulated bench (run by hand after a protocol change).

    python tests/replays/record.py

Starts ``labctl emulate examples/emulated-bench.toml`` on free ports, runs each recorded
command through pyvisa-py against it and stores the run files (with their instrument
transcripts) here.  ``tests/test_replays.py`` replays them on every CI run: offline from
the transcript (the same decisions, pulses and reads, or an error naming the first command
that differs) and on the simulator (statistically consistent).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RECORDINGS = {
    "forming-emulated.h5": ["run", "forming"],
    "program-emulated.h5": ["run", "program", "--levels", "8", "--repeats", "16",
                            "--tolerance", "0.02"],
}


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        station = Path(tmp) / "station.toml"
        emu = subprocess.Popen([sys.executable, "-m", "labctl.cli", "emulate",
                                str(ROOT / "examples" / "emulated-bench.toml"), "--ephemeral",
                                "--station-out", str(station)], stdout=subprocess.DEVNULL)
        try:
            t0 = time.monotonic()
            while not station.exists() and time.monotonic() - t0 < 30:
                time.sleep(0.1)
            time.sleep(0.5)
            for name, argv in RECORDINGS.items():
                out = HERE / name
                out.unlink(missing_ok=True)
                code = subprocess.call([sys.executable, "-m", "labctl.cli", *argv, "--backend",
                                        str(station), "--out", str(out), "--quiet"])
                print(f"{name}: exit {code}")
                if code:
                    return code
        finally:
            emu.terminate()
            emu.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
