"""Emulator layer: the exception tree."""


class EmulatorError(Exception):
    """The emulated chip was given something it cannot run (bad image, table, core id)."""
