"""normstyle's GIMP 3 front-end.

* ``gimp_plugin/normstyle_gimp/`` is the plug-in folder that ``normstyle gimp install`` copies
  into GIMP's plug-ins folder. It runs inside GIMP's own Python (no torch) and only uses the
  standard library plus GIMP's ``gi`` bindings.

Only what GIMP runs lives here. The worker the plug-in starts (:mod:`cli.gimp_worker`, with
torch, in the user's normstyle environment; the JSON-lines protocol is described there) and the
logic behind ``normstyle gimp install/uninstall/doctor`` (:mod:`cli.gimp_install`) live with the
CLI; the real-GIMP test harness lives in ``tests/gimp_harness/``.

Nothing here imports torch or normstyle_core.
"""
