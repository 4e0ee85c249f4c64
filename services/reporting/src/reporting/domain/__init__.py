"""Reporting's pure core: periods, counting rules, report assembly and amendments. No I/O, no clock reads."""
