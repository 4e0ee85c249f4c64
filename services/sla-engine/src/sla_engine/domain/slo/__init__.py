"""Service SLOs (DESIGN.md 2.2, 2.5, 3): SLIs from signals, error budgets and burn-rate alerts; pure."""
