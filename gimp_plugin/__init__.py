"""normstyle's GIMP 3 front-end.

* ``gimp_plugin/normstyle_gimp/`` is the plug-in folder that ``normstyle gimp install`` copies
  into GIMP's plug-ins folder. It runs inside GIMP's own Python (no torch) and only uses the
  standard library plus GIMP's ``gi`` bindings.
* :mod:`gimp_plugin.worker` runs in the user's normstyle environment (with torch). The plug-in
  starts it and talks to it with the JSON-lines protocol described there.
* :mod:`gimp_plugin.install` is the logic behind ``normstyle gimp install/uninstall/doctor``.

Nothing here imports torch at import time.
"""
