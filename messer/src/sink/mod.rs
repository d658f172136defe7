//! Where samples go: the HDF5 file (and, later, metric exporters).

pub mod hdf5;
pub mod table;
pub mod writer;
