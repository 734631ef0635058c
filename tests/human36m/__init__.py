"""Tests of mvn/human36m/ (a package, so that its modules may share names with other test folders)."""
