"""Emulator layer: core runners. A core runner executes one firmware handler on one core's memory and
returns its side effects (packets, DMA reads, host messages, user event) and work counts; the chip
routes and keeps time around it. `native` runs the cffi build of the firmware; `iss` runs the ARM build
in an instruction-set simulator (unicorn) and counts its instructions and cycles."""
