# Where GIMP's progress "stop" button is, for the GUI test (chroot's python3 + GdkPixbuf, no numpy).
# Usage: python3 find_cancel.py IDLE.png BUSY.png  ->  prints "X Y" to click.
# The button only exists while a progress runs, at the right end of the image window's
# statusbar (after the progress bar; GIMP 3's soft-proof toggle is at the very end and does not
# change). So: among the bottom rows that differ between a screenshot without progress and one
# with it, the rightmost run of changed columns is the button.
import sys

import gi
gi.require_version("GdkPixbuf", "2.0")
from gi.repository import GdkPixbuf  # noqa: E402


def load(path):
    pb = GdkPixbuf.Pixbuf.new_from_file(path)
    return pb.get_width(), pb.get_height(), pb.get_rowstride(), pb.get_n_channels(), pb.get_pixels()


w, h, stride, n, idle = load(sys.argv[1])
_, _, stride2, n2, busy = load(sys.argv[2])
assert (stride, n) == (stride2, n2)
changed = {}  # column -> rows
for y in range(h // 2, h):  # the statusbar is in the lower half of the window
    a, b = idle[y * stride:y * stride + w * n], busy[y * stride:y * stride + w * n]
    if a == b:
        continue
    for x in range(w):
        if a[x * n:x * n + 3] != b[x * n:x * n + 3]:
            changed.setdefault(x, []).append(y)
if not changed:
    sys.exit("no difference: no progress on screen")
# the statusbar row: the lowest band of changed rows
bottom = max(max(rows) for rows in changed.values())
cols = sorted(x for x, rows in changed.items() if any(bottom - 30 <= r <= bottom for r in rows))
right = cols[-1]
left = right
while left - 1 in cols or left - 2 in cols:  # the run of changed columns ending at `right`
    left -= 1
rows = [r for x in range(left, right + 1) for r in changed.get(x, []) if bottom - 30 <= r <= bottom]
print((left + right) // 2, (min(rows) + max(rows)) // 2)
