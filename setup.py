"""Build hook: compiles the C firmware and the emulator's C tick loop with cffi at install."""
from setuptools import setup

setup(cffi_modules=["firmware_c/contract/build.py:ffibuilder"])
