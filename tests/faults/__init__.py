"""Fault injection against the three services on the real stack, checked against a clean run (`make faults`)."""
