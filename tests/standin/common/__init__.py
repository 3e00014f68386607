"""Stand-in for MMRec's `common` package (written by us; see tests/standin/README.md)."""
