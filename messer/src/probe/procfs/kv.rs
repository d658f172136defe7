//! `Key: value [kB]` files: /proc/<pid>/status, /proc/<pid>/io,
//! /proc/<pid>/smaps_rollup, /proc/meminfo.

use std::collections::HashMap;

use super::parse::ParseError;

/// The numeric fields named in `keys` (all of them if `keys` is empty) of a
/// `Key: value [kB]` file, in bytes where the file says kB. Lines that are
/// not numbers (e.g. `Name:`) are skipped. Naming the keys spares a string
/// per line: /proc/<pid>/status has about 60.
pub fn parse(file: &'static str, text: &str, keys: &[&str]) -> Result<HashMap<String, u64>, ParseError> {
    let mut out = HashMap::with_capacity(keys.len());
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        if !keys.is_empty() && !keys.contains(&key.trim()) {
            continue;
        }
        let Some(v) = value(file, key, rest)? else {
            continue;
        };
        out.insert(key.trim().to_string(), v);
    }
    if out.is_empty() && !text.trim().is_empty() {
        return Err(ParseError::new(
            file,
            if keys.is_empty() { "no numeric fields" } else { "none of the fields read" },
        ));
    }
    Ok(out)
}

/// The numeric fields `keys` of a `Key: value [kB]` file, in their order
/// (None where absent), as `parse` reads them but into a fixed array: no
/// map and no string per field, for the files read per process.
pub fn fields<const N: usize>(
    file: &'static str,
    text: &str,
    keys: &[&str; N],
) -> Result<[Option<u64>; N], ParseError> {
    let mut out = [None; N];
    let mut found = 0;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(i) = keys.iter().position(|k| *k == key.trim()) else {
            continue;
        };
        let Some(v) = value(file, key, rest)? else {
            continue;
        };
        if out[i].replace(v).is_none() {
            found += 1;
        }
        if found == N {
            break;
        }
    }
    if found == 0 && !text.trim().is_empty() {
        return Err(ParseError::new(file, "none of the fields read"));
    }
    Ok(out)
}

/// The number after `key:` (`rest`), in bytes where it says kB; None where
/// it is not a number (a text field such as `Name:`).
fn value(file: &'static str, key: &str, rest: &str) -> Result<Option<u64>, ParseError> {
    let mut parts = rest.split_whitespace();
    let Some(Ok(v)) = parts.next().map(str::parse::<u64>) else {
        return Ok(None);
    };
    match parts.next() {
        Some("kB") => {
            v.checked_mul(1024).map(Some).ok_or_else(|| ParseError::new(file, format!("{} overflows", key.trim())))
        }
        _ => Ok(Some(v)),
    }
}

/// Field `key` of a parsed file, or an error naming what is missing.
pub fn get(map: &HashMap<String, u64>, file: &'static str, key: &str) -> Result<u64, ParseError> {
    map.get(key).copied().ok_or_else(|| ParseError::new(file, format!("no field {key}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kilobytes_become_bytes_and_text_fields_are_skipped() {
        let text = "Name:\tsh\nVmRSS:\t  1200 kB\nThreads:\t3\nvoluntary_ctxt_switches:\t17\n";
        let m = parse("status", text, &[]).unwrap();
        assert_eq!(m["VmRSS"], 1200 * 1024);
        assert_eq!(m["Threads"], 3);
        assert!(!m.contains_key("Name"));
        assert!(get(&m, "status", "VmSwap").is_err());
        let only = parse("status", text, &["Threads", "VmSwap"]).unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only["Threads"], 3);
        assert!(parse("status", text, &["VmSwap"]).is_err());
    }

    #[test]
    fn fields_come_in_the_order_asked_for() {
        let text = "Name:\tsh\nVmHWM:\t  1200 kB\nThreads:\t3\n";
        assert_eq!(
            fields("status", text, &["Threads", "VmSwap", "VmHWM"]).unwrap(),
            [Some(3), None, Some(1200 * 1024)]
        );
        assert!(fields("status", text, &["VmSwap"]).is_err());
        assert_eq!(fields("status", "", &["VmSwap"]).unwrap(), [None]);
        assert!(fields("io", "rchar: 99999999999999999999999 kB\n", &["rchar"]).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse("io", "rchar: lots\nwchar: more\n", &[]).is_err());
        assert!(parse("io", "", &[]).unwrap().is_empty());
        assert!(parse("io", "rchar: 99999999999999999999999 kB\n", &[]).is_err());
    }
}
