"""The bundle lifecycle: configuration versions applied, cached parsed, recalculated and simulated."""
