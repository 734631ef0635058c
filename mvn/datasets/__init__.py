"""What every benchmark's datasets share: the labelled-crop sample (labelled_crops), the frame
store and its builder (store, store_build), and safe label-file reading (label_files). The
datasets themselves live in their benchmark's package (mvn.human36m.dataset,
mvn.mpi_inf_3dhp.dataset); `mvn.benchmarks.build_dataset(config, split)` builds the one a config
names."""
