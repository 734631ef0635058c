"""Tests of mvn/datasets/ (a package, so that its modules may share names with other test folders)."""
