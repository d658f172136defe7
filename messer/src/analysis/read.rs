//! Reads messer's tables back: any compound dataset of f64, i64 and
//! fixed-length string fields (as messer and PyTables write them), and the
//! attributes on it.

use hdf5::types::{FloatSize, IntSize, TypeDescriptor};
use hdf5_sys::{h5a, h5t};

/// A value read from a table or an attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    F64(f64),
    I64(i64),
    Str(String),
}

impl Cell {
    /// The number, if this is one (NaN for a missing float).
    pub fn number(&self) -> Option<f64> {
        match self {
            Cell::F64(v) => Some(*v),
            Cell::I64(v) => Some(*v as f64),
            Cell::Str(_) => None,
        }
    }
}

/// What can go wrong reading a file.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot open {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("{0} is not a messer file: no table {1}")]
    NoTable(String, String),
    #[error("table {0} has a column of a type messer does not write ({1})")]
    Type(String, String),
    #[error("{0} was recorded without --mode both (no /messer_procfs_timeseries); record with --mode both to compare")]
    NotBoth(String),
    #[error("no column {column} in /{table} of {file}; `messer inspect {file}` lists them")]
    NoColumn { file: String, table: String, column: String },
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("HDF5: {0}")]
    Lib(String),
}

impl ReadError {
    /// Bad input (exit 2): a file that is not a usable recording, or a
    /// request it cannot answer.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ReadError::Open { .. }
                | ReadError::NoTable(..)
                | ReadError::Type(..)
                | ReadError::NotBoth(_)
                | ReadError::NoColumn { .. }
        )
    }

    /// The reader of our output went away (`messer export ... | head`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, ReadError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// A whole table in memory.
pub struct TableData {
    pub name: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    pub attrs: Vec<(String, Cell)>,
}

enum Field {
    F64,
    I64,
    Str(usize),
}

fn lib(e: hdf5::Error) -> ReadError {
    ReadError::Lib(e.to_string())
}

/// Opens `path` read-only, without taking a file lock, so that a recording
/// still being written can be read: what its last flush wrote is seen.
pub fn open(path: &std::path::Path) -> Result<hdf5::File, ReadError> {
    hdf5::File::with_options()
        .with_fapl(|p| p.file_locking(false))
        .open(path)
        .map_err(|e| ReadError::Open { path: path.display().to_string(), reason: one_line(&e.to_string()) })
}

/// HDF5's messages span lines; errors are reported on one.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads with `f`, trying again a few times when it fails: a recording in
/// progress is flushed every interval, and a read that met a flush half
/// done sees a table's parts from before and after it.
pub fn retrying<T>(mut f: impl FnMut() -> Result<T, ReadError>) -> Result<T, ReadError> {
    let mut tries = 0;
    loop {
        match f() {
            Err(e)
                if tries < 4
                    && !matches!(e, ReadError::NoColumn { .. } | ReadError::NotBoth(_) | ReadError::Output(_)) =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20 << tries));
            }
            r => return r,
        }
    }
}

/// Names of the datasets at the root of the file.
pub fn tables(file: &hdf5::File) -> Result<Vec<String>, ReadError> {
    Ok(file.datasets().map_err(lib)?.iter().map(|d| d.name().trim_start_matches('/').to_string()).collect())
}

/// Reads attribute `name` of `ds` (numbers and fixed or variable strings).
fn attr(ds: &hdf5::Dataset, name: &str) -> Result<Cell, ReadError> {
    let a = ds.attr(name).map_err(lib)?;
    match a.dtype().and_then(|t| t.to_descriptor()).map_err(lib)? {
        TypeDescriptor::Float(_) => a.read_scalar::<f64>().map(Cell::F64).map_err(lib),
        TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_) => a.read_scalar::<i64>().map(Cell::I64).map_err(lib),
        TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => {
            let mut buf = vec![0u8; n.max(1)];
            // SAFETY: reading a scalar fixed string of `n` bytes with its own
            // type into a buffer of that size, under the library lock.
            let ok = hdf5::sync::sync(|| unsafe {
                let tid = h5a::H5Aget_type(a.id());
                let ok = tid >= 0 && h5a::H5Aread(a.id(), tid, buf.as_mut_ptr().cast()) >= 0;
                if tid >= 0 {
                    h5t::H5Tclose(tid);
                }
                ok
            });
            if !ok {
                return Err(ReadError::Lib(format!("reading attribute {name}")));
            }
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            Ok(Cell::Str(String::from_utf8_lossy(&buf[..end]).into_owned()))
        }
        TypeDescriptor::VarLenAscii => {
            a.read_scalar::<hdf5::types::VarLenAscii>().map(|s| Cell::Str(s.as_str().to_string())).map_err(lib)
        }
        TypeDescriptor::VarLenUnicode => {
            a.read_scalar::<hdf5::types::VarLenUnicode>().map(|s| Cell::Str(s.as_str().to_string())).map_err(lib)
        }
        other => Ok(Cell::Str(format!("<{other:?}>"))),
    }
}

/// Reads table `name` of `file` whole.
pub fn read_table(file: &hdf5::File, name: &str) -> Result<TableData, ReadError> {
    let ds = file.dataset(name).map_err(|_| ReadError::NoTable(file.filename(), name.to_string()))?;
    let TypeDescriptor::Compound(ct) = ds.dtype().and_then(|t| t.to_descriptor()).map_err(lib)? else {
        return Err(ReadError::Type(name.into(), "not a compound table".into()));
    };
    let mut fields = Vec::new();
    for f in &ct.fields {
        let kind = match &f.ty {
            TypeDescriptor::Float(FloatSize::U8) => Field::F64,
            TypeDescriptor::Integer(IntSize::U8) => Field::I64,
            TypeDescriptor::FixedAscii(n) | TypeDescriptor::FixedUnicode(n) => Field::Str(*n),
            other => return Err(ReadError::Type(name.into(), format!("{}: {other:?}", f.name))),
        };
        fields.push((f.name.clone(), f.offset, kind));
    }
    let n = ds.size();
    let buf = crate::sink::hdf5::table::read_raw(&ds, ct.size)
        .map_err(|e| ReadError::Lib(format!("reading table {name}: {e}")))?;
    let rows = buf
        .chunks_exact(ct.size.max(1))
        .take(n)
        .map(|rec| {
            fields
                .iter()
                .map(|(_, off, kind)| {
                    let bytes = |len: usize| &rec[*off..*off + len];
                    match kind {
                        Field::F64 => Cell::F64(f64::from_le_bytes(bytes(8).try_into().unwrap_or([0; 8]))),
                        Field::I64 => Cell::I64(i64::from_le_bytes(bytes(8).try_into().unwrap_or([0; 8]))),
                        Field::Str(len) => {
                            let b = bytes(*len);
                            let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                            Cell::Str(String::from_utf8_lossy(&b[..end]).into_owned())
                        }
                    }
                })
                .collect()
        })
        .collect();
    let mut attrs = Vec::new();
    for a in ds.attr_names().map_err(lib)? {
        attrs.push((a.clone(), attr(&ds, &a)?));
    }
    attrs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(TableData { name: name.to_string(), columns: fields.into_iter().map(|f| f.0).collect(), rows, attrs })
}
