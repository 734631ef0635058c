"""MPI-INF-3DHP: facts, label files, datasets, the PCK / AUC tables, MATLAB files
(mvn.mpi_inf_3dhp.benchmark)."""
