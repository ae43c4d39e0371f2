//! Reads the aligned table format of `psql` into [`RawRow`]s, so recorded output of a real
//! cluster can feed the mappings in tests (here and in the crates that build snapshots).
//! Only tests use it, hence its place behind the `test-support` feature.
//!
//! psql prints NULL and the empty string alike; both become `None`, which is what the
//! recorded catalog rows mean.

use crate::queries::{RawRow, RowError};

/// Parses the first aligned table in `text`: a header line, a `---+---` line, rows, and
/// optionally `(N rows)`. Lines before the header are skipped.
pub fn parse_aligned(text: &str) -> Result<Vec<RawRow>, RowError> {
    let lines: Vec<&str> = text.lines().collect();
    let header_at = lines
        .windows(2)
        .position(|pair| pair[0].contains('|') && is_separator(pair[1]))
        .or_else(|| {
            // A one-column table has no `|` in its header.
            lines
                .windows(2)
                .position(|pair| !pair[0].trim().is_empty() && is_separator(pair[1]))
        })
        .ok_or_else(|| RowError::Malformed("no psql table header found".into()))?;
    let columns: Vec<&str> = lines[header_at].split('|').map(str::trim).collect();
    let mut rows = Vec::new();
    for (offset, line) in lines[header_at + 2..].iter().enumerate() {
        if line.trim().is_empty() || is_row_count(line) {
            break;
        }
        let values: Vec<&str> = line.split('|').map(str::trim).collect();
        if values.len() != columns.len() {
            return Err(RowError::Malformed(format!(
                "table line {}: {} values for {} columns",
                offset + 1,
                values.len(),
                columns.len()
            )));
        }
        rows.push(RawRow::from_pairs(
            columns
                .iter()
                .zip(values)
                .map(|(c, v)| (*c, (!v.is_empty()).then_some(v))),
        ));
    }
    Ok(rows)
}

fn is_separator(line: &str) -> bool {
    let line = line.trim();
    line.starts_with('-') && line.chars().all(|c| c == '-' || c == '+')
}

fn is_row_count(line: &str) -> bool {
    let line = line.trim();
    line.starts_with('(') && (line.ends_with(" row)") || line.ends_with(" rows)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_recorded_table() {
        let text = "\
 gp_segment_id |  pid  | state     | sync_error
---------------+-------+-----------+------------
            -1 | 14870 | streaming | none
             0 |       |           | none
(2 rows)
";
        let rows = parse_aligned(text).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get("pid"), Some("14870"));
        assert_eq!(rows[1].get("pid"), None);
        assert_eq!(rows[1].get("sync_error"), Some("none"));
    }

    #[test]
    fn reads_an_empty_and_a_one_column_table() {
        let empty = " pid | state\n-----+-------\n(0 rows)\n";
        assert!(parse_aligned(empty).unwrap().is_empty());
        let one = " gp_request_fts_probe_scan \n---------------------------\n t\n(1 row)\n";
        let rows = parse_aligned(one).unwrap();
        assert_eq!(rows[0].get("gp_request_fts_probe_scan"), Some("t"));
    }

    #[test]
    fn rejects_ragged_rows_and_missing_headers() {
        assert!(parse_aligned("a | b\n---+---\n 1 | 2 | 3\n").is_err());
        assert!(parse_aligned("no table here").is_err());
        assert!(parse_aligned("").is_err());
    }
}
