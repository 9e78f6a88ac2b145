# Waits on the plug-in's trace ($NORMSTYLE_GIMP_TRACE) from one process that polls every 50 ms
# (the GUI scripts' wait_trace starts a Python per poll, too much CPU beside a timed preview).
# Runs inside the GIMP chroot with its python3. Usage:
#   wait_trace.py TRACE count                  -> prints how many previews were drawn so far
#   wait_trace.py TRACE drawn N TIMEOUT [QUIET] -> waits until more than N previews were drawn,
#       then until none is drawn for QUIET seconds (default 1); exit 1 on timeout
import os
import sys
import time


def drawn(path):
    if not os.path.exists(path):
        return 0
    with open(path, encoding="utf-8") as fh:
        return sum(1 for line in fh if '"kind": "drawn"' in line)


def main():
    path, what = sys.argv[1], sys.argv[2]
    if what == "count":
        print(drawn(path))
        return 0
    base, timeout = int(sys.argv[3]), float(sys.argv[4])
    quiet = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
    deadline = time.monotonic() + timeout
    while drawn(path) <= base:
        if time.monotonic() > deadline:
            return 1
        time.sleep(0.05)
    last, since = drawn(path), time.monotonic()
    while time.monotonic() - since < quiet:  # a newer preview may still come (a change mid-render)
        time.sleep(0.05)
        n = drawn(path)
        if n != last:
            last, since = n, time.monotonic()
        if time.monotonic() > deadline:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
