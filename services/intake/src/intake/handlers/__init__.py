"""Intake's handlers, one module per role: accepting events (`intake`), replaying the archive (`replay`),
retention (`purge`), tenants' API keys (`keys`). Thin: contract in, domain rules, one unit of work, outcome out."""
