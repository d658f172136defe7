//! The HDF5 file: tables of the original Messer's layout plus metadata.

pub mod attrs;
pub mod compact;
pub mod table;

use std::path::{Path, PathBuf};

pub use attrs::AttrValue;
pub use table::Table;

/// What can go wrong writing HDF5.
#[derive(Debug, thiserror::Error)]
pub enum Hdf5Error {
    #[error("HDF5: {0}")]
    Lib(String),
    #[error("HDF5 call {0} failed")]
    Call(&'static str),
    #[error("invalid HDF5 name {0:?}")]
    Name(String),
    #[error("cannot create {path}: {reason}")]
    Create { path: PathBuf, reason: String },
}

impl Hdf5Error {
    pub(crate) fn lib(e: hdf5::Error) -> Self {
        // HDF5's messages span lines; errors are reported on one.
        Hdf5Error::Lib(e.to_string().split_whitespace().collect::<Vec<_>>().join(" "))
    }
}

/// Creates a new HDF5 file at `path`; fails if it exists.
pub fn create_file(path: &Path) -> Result<hdf5::File, Hdf5Error> {
    hdf5::File::create_excl(path).map_err(|e| Hdf5Error::Create { path: path.to_path_buf(), reason: e.to_string() })
}

/// Flushes everything written so far to the operating system.
pub fn flush(file: &hdf5::File) -> Result<(), Hdf5Error> {
    file.flush().map_err(Hdf5Error::lib)
}
