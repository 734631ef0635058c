"""Tests of mvn/mpi_inf_3dhp/ (a package, so that its modules may share names with other test folders)."""
