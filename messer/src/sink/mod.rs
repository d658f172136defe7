//! Where samples go: the HDF5 file, a Prometheus endpoint, InfluxDB.

pub mod exporters;
pub mod hdf5;
pub mod influx;
pub mod metrics;
pub mod prometheus;
pub mod queue;
pub mod writer;
