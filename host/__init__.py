"""s2eprop host runtime: config, data, partitioning, images, transport, training loop and CLI."""
