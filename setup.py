"""Build hook: compiles the C firmware and the emulator's C tick loop with cffi at install."""
from setuptools import setup

setup(cffi_modules=["emulator/fw_build.py:ffibuilder"])
