"""The read side: every query behind the reports, the dashboard and the published snapshots, and the read-only
snapshot transaction they run in."""
