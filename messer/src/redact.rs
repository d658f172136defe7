//! Secrets kept out of files, logs and the status line: InfluxDB tokens and
//! the user:password part of URLs. A leaf module: imports nothing of messer.

/// What stands where a secret was.
pub const MASK: &str = "***";

/// Options whose value is a secret.
const SECRET_OPTIONS: &[&str] = &["--influx-token"];

/// `text` with the userinfo of every URL in it (`scheme://user:pass@host`)
/// replaced by the mask: `scheme://***@host`.
pub fn urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#' or white space.
        let end = tail.find(|c: char| matches!(c, '/' | '?' | '#') || c.is_whitespace()).unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str(MASK);
                out.push_str(&tail[at..end]);
            }
            None => out.push_str(&tail[..end]),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// A command line as one string with secrets masked: the value of a secret
/// option (`--influx-token T`, `--influx-token=T`) and URL userinfo.
pub fn command_line<S: AsRef<str>>(args: &[S]) -> String {
    let mut out = Vec::with_capacity(args.len());
    let mut secret_next = false;
    for a in args {
        let a = a.as_ref();
        if std::mem::take(&mut secret_next) {
            out.push(MASK.to_string());
            continue;
        }
        // After `--` comes the launched command: its words are its own.
        if a == "--" {
            out.push(a.to_string());
            out.extend(args[out.len()..].iter().map(|w| urls(w.as_ref())));
            break;
        }
        if SECRET_OPTIONS.contains(&a) {
            secret_next = true;
            out.push(a.to_string());
        } else if let Some(opt) = SECRET_OPTIONS.iter().find(|o| a.starts_with(&format!("{o}="))) {
            out.push(format!("{opt}={MASK}"));
        } else {
            out.push(urls(a));
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_masked() {
        assert_eq!(urls("http://u:pw@h:8086/x?y=1"), "http://***@h:8086/x?y=1");
        assert_eq!(urls("https://tok@h"), "https://***@h");
        assert_eq!(urls("http://h:8086/a@b"), "http://h:8086/a@b");
        assert_eq!(
            urls("error at http://a:b@h/w: refused, see http://c@d"),
            "error at http://***@h/w: refused, see http://***@d"
        );
        assert_eq!(urls("no url here"), "no url here");
        assert_eq!(urls("x://"), "x://");
    }

    #[test]
    fn tokens_are_masked() {
        let a = [
            "messer",
            "--influx",
            "http://u:SECRET1@h",
            "--influx-token",
            "SECRET2",
            "--influx-token=SECRET3",
            "--pid",
            "1",
        ];
        let c = command_line(&a);
        assert!(!c.contains("SECRET"), "{c}");
        assert_eq!(c, "messer --influx http://***@h --influx-token *** --influx-token=*** --pid 1");
        assert_eq!(command_line(&["messer", "--", "sh", "-c", "--influx-token x"]), "messer -- sh -c --influx-token x");
    }
}
