//! What commands print on standard output: lines, plain aligned tables for list
//! commands, and counted nouns for messages.

use std::fmt::Display;
use std::io::{ErrorKind, Write as _};

/// Prints one line on standard output. A reader that went away (`headcount eval … |
/// head`) ends the process quietly, as for any Unix filter; another failure to write
/// ends it with the reason on standard error, instead of the panic of `println!`.
pub fn line(text: impl Display) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

/// `n` and the noun, singular for one: `count(1, "event", "events")` is `1 event`.
pub fn count(n: impl Into<u64>, singular: &str, plural: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// Prints rows under a header, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        line(padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn a_count_of_one_takes_the_singular() {
        assert_eq!(count(0u64, "event", "events"), "0 events");
        assert_eq!(count(1u64, "line", "lines"), "1 line");
        assert_eq!(count(2u32, "day", "days"), "2 days");
    }
}
