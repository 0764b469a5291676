"""Emulator layer: core runners. A core runner executes one firmware handler on one core's memory and
returns its side effects (packets, DMA reads, host messages, user event) and work counts; the chip
routes and keeps time around it. `native` runs the cffi build of the firmware; an instruction-set
simulator of the ARM build is to be the second."""
