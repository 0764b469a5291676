"""Firmware contract (`s2eprop.firmware`): what host, chip model and firmware agree on, written once.

The cffi build of the C firmware and the chip's C loops (`build`), its ABI read from the C headers
(`abi`), the outbox format (`outbox`), the host messages (`messages`), multicast routes (`routes`), and
the ARM build with its image, size and stack reports. It imports nothing above it.
"""
