//! Table schemas and rows, independent of any file format.
//!
//! A table is a list of typed columns fixed when a recording starts; each row
//! is one value per column, in column order. Sinks turn rows into their own
//! representation (packed HDF5 compound records, text lines, metrics).

/// Makes text fit a fixed-length ASCII column: non-ASCII bytes become '?',
/// and it is cut at `len` bytes.
pub fn ascii(text: &str, len: usize) -> String {
    text.chars().map(|c| if c.is_ascii() && c != '\0' { c } else { '?' }).take(len).collect()
}

/// The type of one column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// IEEE 754 double; NaN marks a value that is missing in this row.
    F64,
    /// Signed 64-bit integer.
    I64,
    /// Fixed-length ASCII string of this many bytes, NUL-padded.
    Ascii(usize),
}

impl Kind {
    /// Bytes one value takes in a packed record.
    pub fn size(self) -> usize {
        match self {
            Kind::F64 | Kind::I64 => 8,
            Kind::Ascii(n) => n,
        }
    }
}

/// One column: its name as it appears in files, and its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
}

impl Column {
    pub fn new(name: impl Into<String>, kind: Kind) -> Self {
        Self { name: name.into(), kind }
    }
}

/// The columns of one table, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Schema {
    pub columns: Vec<Column>,
}

impl Schema {
    pub fn new(columns: Vec<Column>) -> Self {
        Self { columns }
    }

    /// Bytes of one packed record.
    pub fn record_size(&self) -> usize {
        self.columns.iter().map(|c| c.kind.size()).sum()
    }

    /// Index of the column named `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// One value of a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    F64(f64),
    I64(i64),
    Ascii(String),
}

/// A row of a table, one value per column in schema order.
pub type Row = Vec<Value>;

/// Appends `row` to `out` as a packed little-endian record of `schema`.
///
/// A value whose type does not match its column is written as the column's
/// missing value (NaN, `i64::MIN`, empty string); rows are built by this
/// crate, so that is a bug, caught by the debug assertion.
pub fn pack(schema: &Schema, row: &Row, out: &mut Vec<u8>) {
    debug_assert_eq!(schema.columns.len(), row.len(), "row does not match schema");
    for (col, value) in schema.columns.iter().zip(row) {
        match (col.kind, value) {
            (Kind::F64, Value::F64(v)) => out.extend_from_slice(&v.to_le_bytes()),
            (Kind::I64, Value::I64(v)) => out.extend_from_slice(&v.to_le_bytes()),
            (Kind::Ascii(n), Value::Ascii(s)) => {
                let bytes = s.as_bytes();
                let take = bytes.len().min(n);
                out.extend_from_slice(&bytes[..take]);
                out.resize(out.len() + (n - take), 0);
            }
            (kind, other) => {
                debug_assert!(false, "column {} of kind {kind:?} got {other:?}", col.name);
                match kind {
                    Kind::F64 => out.extend_from_slice(&f64::NAN.to_le_bytes()),
                    Kind::I64 => out.extend_from_slice(&i64::MIN.to_le_bytes()),
                    Kind::Ascii(n) => out.resize(out.len() + n, 0),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_in_column_order_with_padding() {
        let schema = Schema::new(vec![
            Column::new("a", Kind::F64),
            Column::new("b", Kind::Ascii(4)),
            Column::new("c", Kind::I64),
        ]);
        let mut out = Vec::new();
        pack(&schema, &vec![Value::F64(1.5), Value::Ascii("xy".into()), Value::I64(-2)], &mut out);
        assert_eq!(out.len(), schema.record_size());
        assert_eq!(&out[0..8], &1.5f64.to_le_bytes());
        assert_eq!(&out[8..12], b"xy\0\0");
        assert_eq!(&out[12..20], &(-2i64).to_le_bytes());
    }

    #[test]
    fn long_strings_are_cut_to_the_column() {
        let schema = Schema::new(vec![Column::new("s", Kind::Ascii(3))]);
        let mut out = Vec::new();
        pack(&schema, &vec![Value::Ascii("abcdef".into())], &mut out);
        assert_eq!(out, b"abc");
    }
}
