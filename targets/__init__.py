"""Target profiles shipped with edgert (data: one TOML file per device)."""
