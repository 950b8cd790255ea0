"""Stands in for ``smartctl`` in the tests: no physical disk is reachable here.

``fake_smartctl.py DIR [smartctl arguments]`` prints ``DIR/scan.json`` for ``--scan-open``
and ``DIR/<device name>.json`` for a device (``/dev/sda`` -> ``sda.json``), and exits with
the ``smartctl.exit_status`` recorded in that file, as smartctl does. The files are in
smartctl 7.3's JSON output format; each call is appended to ``DIR/calls.log``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    folder, args = Path(sys.argv[1]), sys.argv[2:]
    with open(folder / "calls.log", "a") as log:
        log.write(" ".join(args) + "\n")
    name = "scan" if "--scan-open" in args else Path(args[-1]).name
    path = folder / f"{name}.json"
    if not path.exists():
        print(
            json.dumps(
                {
                    "smartctl": {
                        "exit_status": 2,
                        "messages": [
                            {
                                "string": f"{args[-1]}: Unable to detect device type",
                                "severity": "error",
                            }
                        ],
                    }
                }
            )
        )
        return 2
    text = path.read_text()
    print(text)
    return int(json.loads(text)["smartctl"]["exit_status"])


if __name__ == "__main__":
    sys.exit(main())
