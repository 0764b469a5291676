"""s2eprop emulator: a SpiNNaker 2 chip model that runs the C firmware."""
