"""Helpers for testing the plug-in in a real GIMP 3 (Debian trixie chroot); used by tests/test_gimp_*.py."""
