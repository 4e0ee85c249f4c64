"""The clock sub-domain: ticket snapshots in, clock transitions out (docs/clocks.md)."""
