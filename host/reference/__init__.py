"""Reference models: the NumPy golden E-prop model and exact BPTT (ground truth for the firmware)."""
