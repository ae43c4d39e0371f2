//! The libpq password file (`~/.pgpass`, `PGPASSFILE`): lines of
//! `hostname:port:database:username:password`, `*` matching anything in the first four
//! fields, `\:` and `\\` escaping, `#` starting a comment. The first matching line wins.

/// The password for a connection, if a line matches.
pub fn lookup(contents: &str, host: &str, port: u16, dbname: &str, user: &str) -> Option<String> {
    let port = port.to_string();
    contents.lines().find_map(|line| {
        if line.trim_start().starts_with('#') {
            return None;
        }
        let fields = split_fields(line)?;
        let wanted = [host, port.as_str(), dbname, user];
        let matches = fields[..4]
            .iter()
            .zip(wanted)
            .all(|(field, value)| field == "*" || field == value);
        matches.then(|| fields[4].clone())
    })
}

/// Five fields with escapes resolved; `None` for a line that has fewer (libpq skips those).
fn split_fields(line: &str) -> Option<[String; 5]> {
    let mut fields: Vec<String> = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    fields.last_mut()?.push(escaped);
                }
            }
            // The password is the rest of the line, colons included.
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    fields.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# comment line
cdw:6000:postgres:gpadmin:first
*:*:*:monitor:p\\:w\\\\d
short:line
scdw:6001:*:gpadmin:with:colons
";

    #[test]
    fn first_matching_line_wins_with_wildcards_and_escapes() {
        assert_eq!(
            lookup(FILE, "cdw", 6000, "postgres", "gpadmin").as_deref(),
            Some("first")
        );
        assert_eq!(
            lookup(FILE, "anything", 1, "db", "monitor").as_deref(),
            Some("p:w\\d")
        );
        assert_eq!(
            lookup(FILE, "scdw", 6001, "template1", "gpadmin").as_deref(),
            Some("with:colons")
        );
        assert_eq!(lookup(FILE, "cdw", 6001, "postgres", "gpadmin"), None);
        assert_eq!(lookup("", "cdw", 6000, "postgres", "gpadmin"), None);
    }
}
