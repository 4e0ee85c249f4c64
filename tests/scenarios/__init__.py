"""The clock scenarios of the public contract (copied byte for byte from the shared scenario set)."""
