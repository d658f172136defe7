//! `messer export FILE --format csv|json [--table NAME] [-o OUT]`.

use std::io::Write;

use super::read::{self, Cell, ReadError};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header; a missing value is an empty field.
    Csv,
    /// One JSON object per row in an array; a missing value is null.
    Json,
}

fn csv_field(c: &Cell) -> String {
    match c {
        Cell::F64(v) if v.is_nan() => String::new(),
        Cell::F64(v) => format!("{v}"),
        Cell::I64(v) => format!("{v}"),
        Cell::Str(s) if s.contains([',', '"', '\n']) => format!("\"{}\"", s.replace('"', "\"\"")),
        Cell::Str(s) => s.clone(),
    }
}

fn json_value(c: &Cell) -> serde_json::Value {
    match c {
        Cell::F64(v) => serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, serde_json::Value::Number),
        Cell::I64(v) => serde_json::Value::from(*v),
        Cell::Str(s) => serde_json::Value::from(s.as_str()),
    }
}

/// Writes table `table` of `path` to `out` in `format`.
pub fn export(path: &std::path::Path, table: &str, format: Format, out: &mut dyn Write) -> Result<(), ReadError> {
    let file = read::open(path)?;
    let t = read::read_table(&file, table)?;
    let io = ReadError::Output;
    match format {
        Format::Csv => {
            writeln!(out, "{}", t.columns.join(",")).map_err(io)?;
            for r in &t.rows {
                let line: Vec<String> = r.iter().map(csv_field).collect();
                writeln!(out, "{}", line.join(",")).map_err(io)?;
            }
        }
        Format::Json => {
            let rows: Vec<serde_json::Value> = t
                .rows
                .iter()
                .map(|r| serde_json::Value::Object(t.columns.iter().cloned().zip(r.iter().map(json_value)).collect()))
                .collect();
            serde_json::to_writer(&mut *out, &rows).map_err(|e| ReadError::Output(e.into()))?;
            writeln!(out).map_err(io)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_values_and_awkward_text() {
        assert_eq!(csv_field(&Cell::F64(f64::NAN)), "");
        assert_eq!(csv_field(&Cell::Str("a,\"b\"".into())), "\"a,\"\"b\"\"\"");
        assert_eq!(json_value(&Cell::F64(f64::NAN)), serde_json::Value::Null);
        assert_eq!(json_value(&Cell::I64(3)), serde_json::json!(3));
    }
}
