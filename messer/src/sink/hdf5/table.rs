//! An appendable table: a 1-D, chunked, compressed dataset of a compound type,
//! with the attributes that make PyTables (and so pandas) see it as a Table.

use hdf5::types::{CompoundField, CompoundType, FloatSize, IntSize, TypeDescriptor};
use hdf5::{Dataset, Datatype, File};
use hdf5_sys::{h5d, h5p, h5s};

use super::Hdf5Error;
use super::attrs::{self, AttrValue};
use crate::base::table::{Kind, Row, Schema, pack};

/// Rows per chunk (space is allocated a chunk at a time).
const CHUNK_ROWS: usize = 32;

/// A table being appended to.
pub struct Table {
    dataset: Dataset,
    schema: Schema,
    rows: usize,
    /// The packed rows of the last, partly filled chunk (whole-chunk size).
    chunk: Vec<u8>,
    /// The NROWS attribute, kept open: rewritten in place after each append
    /// (replacing it listed the table's ~140 attributes every time).
    nrows: hdf5::Attribute,
}

fn descriptor(schema: &Schema) -> TypeDescriptor {
    let mut offset = 0;
    let fields = schema
        .columns
        .iter()
        .enumerate()
        .map(|(index, col)| {
            let ty = match col.kind {
                Kind::F64 => TypeDescriptor::Float(FloatSize::U8),
                Kind::I64 => TypeDescriptor::Integer(IntSize::U8),
                Kind::Ascii(n) => TypeDescriptor::FixedAscii(n),
            };
            let field = CompoundField::new(&col.name, ty, offset, index);
            offset += col.kind.size();
            field
        })
        .collect();
    TypeDescriptor::Compound(CompoundType { fields, size: offset })
}

impl Table {
    /// Creates table `name` at the file's root with the given schema.
    pub fn create(file: &File, name: &str, title: &str, schema: Schema) -> Result<Self, Hdf5Error> {
        let desc = descriptor(&schema);
        // No compression filter: a compressed chunk is rewritten whole (and
        // may move) at every flush, and a kill -9 in the middle left a chunk
        // that failed to decompress (seen in CI). Uncompressed chunks are
        // written in place, so a crash cannot make older rows unreadable.
        // In the file exactly as `pack` lays a row out (the descriptor's own
        // offsets, no C alignment): chunks are written as packed bytes.
        let dtype = Datatype::from_descriptor(&desc).map_err(Hdf5Error::lib)?;
        let builder = file.new_dataset_builder().empty_as(&dtype).shape(0..).chunk(CHUNK_ROWS);
        let dataset = builder.create(name).map_err(Hdf5Error::lib)?;
        // PyTables' Table attributes: https://www.pytables.org/usersguide/file_format.html
        attrs::set(&dataset, "CLASS", &AttrValue::Str("TABLE".into()))?;
        attrs::set(&dataset, "VERSION", &AttrValue::Str("2.7".into()))?;
        attrs::set(&dataset, "TITLE", &AttrValue::Str(title.into()))?;
        for (i, col) in schema.columns.iter().enumerate() {
            attrs::set(&dataset, &format!("FIELD_{i}_NAME"), &AttrValue::Str(col.name.clone()))?;
        }
        attrs::set(&dataset, "NROWS", &AttrValue::I64(0))?;
        let nrows = dataset.attr("NROWS").map_err(Hdf5Error::lib)?;
        let chunk = vec![0; CHUNK_ROWS * schema.record_size()];
        Ok(Self { dataset, schema, rows: 0, chunk, nrows })
    }

    /// Rows written so far.
    /// The columns of the table.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row has been written.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Sets an attribute on the table dataset (metadata).
    pub fn set_attr(&self, name: &str, value: &AttrValue) -> Result<(), Hdf5Error> {
        attrs::set(&self.dataset, name, value)
    }

    /// Appends `rows` at the end of the table.
    ///
    /// Rows are packed into an in-memory copy of the last chunk, and each
    /// chunk touched is written whole with H5Dwrite_chunk: no datatype
    /// conversion path is looked up (for a compound type of ~130 members
    /// HDF5 1.10 bubble-sorts both types' member names on every H5Dwrite:
    /// a quarter of messer's CPU at 10 ms) and no chunk cache is involved.
    /// Chunks are uncompressed and keep their size, so a rewrite lands in
    /// place and a crash cannot make older rows unreadable.
    pub fn append(&mut self, rows: &[Row]) -> Result<(), Hdf5Error> {
        if rows.is_empty() {
            return Ok(());
        }
        let record = self.schema.record_size();
        self.dataset.resize(self.rows + rows.len()).map_err(Hdf5Error::lib)?;
        let mut row_buf = Vec::with_capacity(record);
        for (i, row) in rows.iter().enumerate() {
            let at = (self.rows + i) % CHUNK_ROWS;
            row_buf.clear();
            pack(&self.schema, row, &mut row_buf);
            self.chunk[at * record..(at + 1) * record].copy_from_slice(&row_buf);
            // A chunk is written when it is full or holds the batch's last row.
            if at == CHUNK_ROWS - 1 || i == rows.len() - 1 {
                let first = self.rows + i - at;
                write_chunk(&self.dataset, first, &self.chunk)?;
                if at == CHUNK_ROWS - 1 {
                    self.chunk.fill(0);
                }
            }
        }
        self.rows += rows.len();
        self.nrows.write_scalar(&(self.rows as i64)).map_err(Hdf5Error::lib)
    }
}

/// Writes `chunk` (one whole chunk of packed records) as the chunk that
/// starts at row `first`, unfiltered.
fn write_chunk(dataset: &Dataset, first: usize, chunk: &[u8]) -> Result<(), Hdf5Error> {
    let offset = [first as u64];
    // SAFETY: `chunk` is exactly one chunk of the dataset's (packed) type;
    // the offset is a chunk boundary inside the dataset's extent.
    let rc = hdf5::sync::sync(|| unsafe {
        h5d::H5Dwrite_chunk(dataset.id(), h5p::H5P_DEFAULT, 0, offset.as_ptr(), chunk.len(), chunk.as_ptr().cast())
    });
    if rc >= 0 { Ok(()) } else { Err(Hdf5Error::Call("H5Dwrite_chunk")) }
}

/// Reads every row of `dataset` in its own (packed) type: rows x `record` bytes.
pub fn read_raw(dataset: &Dataset, record: usize) -> Result<Vec<u8>, Hdf5Error> {
    read_rows(dataset, record, 0, dataset.size())
}

/// Calls `io(memory space, file space)` with rows `start..start + count` of
/// `dataset` selected (ids made and closed here, under the library lock);
/// false if a space could not be made or `io` failed.
fn with_rows(
    dataset: &Dataset,
    start: usize,
    count: usize,
    io: impl FnOnce(hdf5_sys::h5i::hid_t, hdf5_sys::h5i::hid_t) -> bool,
) -> bool {
    let (start, dims) = ([start as u64], [count as u64]);
    // SAFETY: HDF5 C calls on ids created and closed here; the arrays live
    // through the calls.
    hdf5::sync::sync(|| unsafe {
        let fspace = h5d::H5Dget_space(dataset.id());
        let mspace = h5s::H5Screate_simple(1, dims.as_ptr(), std::ptr::null());
        let sel = h5s::H5S_seloper_t::H5S_SELECT_SET;
        let null = std::ptr::null();
        let ok = fspace >= 0
            && mspace >= 0
            && h5s::H5Sselect_hyperslab(fspace, sel, start.as_ptr(), null, dims.as_ptr(), null) >= 0
            && io(mspace, fspace);
        if mspace >= 0 {
            h5s::H5Sclose(mspace);
        }
        if fspace >= 0 {
            h5s::H5Sclose(fspace);
        }
        ok
    })
}

/// Reads rows `start..start + count` of `dataset` in its own (packed) type.
pub fn read_rows(dataset: &Dataset, record: usize, start: usize, count: usize) -> Result<Vec<u8>, Hdf5Error> {
    let mut buf = vec![0u8; count * record];
    if count == 0 {
        return Ok(buf);
    }
    let ok = with_rows(dataset, start, count, |mspace, fspace| {
        // SAFETY: the buffer holds `count` records of the dataset's type.
        unsafe {
            let tid = h5d::H5Dget_type(dataset.id());
            let ok = tid >= 0
                && h5d::H5Dread(dataset.id(), tid, mspace, fspace, h5p::H5P_DEFAULT, buf.as_mut_ptr().cast()) >= 0;
            if tid >= 0 {
                hdf5_sys::h5t::H5Tclose(tid);
            }
            ok
        }
    });
    if ok { Ok(buf) } else { Err(Hdf5Error::Call("H5Dread")) }
}

/// Writes `count` packed records from `buf` at row `start` of `dataset`.
pub(crate) fn write_rows(
    dataset: &Dataset,
    dtype: &Datatype,
    start: usize,
    count: usize,
    buf: &[u8],
) -> Result<(), Hdf5Error> {
    let ok = with_rows(dataset, start, count, |mspace, fspace| {
        // SAFETY: `buf` holds exactly `count` packed records of `dtype`
        // (built by `pack` from the same schema).
        unsafe { h5d::H5Dwrite(dataset.id(), dtype.id(), mspace, fspace, h5p::H5P_DEFAULT, buf.as_ptr().cast()) >= 0 }
    });
    if ok { Ok(()) } else { Err(Hdf5Error::Call("H5Dwrite")) }
}
