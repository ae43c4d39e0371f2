//! What `executor.ssh.argv_prefix` may hold: the ssh binary and options that cannot run a
//! command.
//!
//! The prefix is the one place in a policy that names a program, so without this check a
//! policy could express a free-form command (`[/bin/sh, -c, ...]`) or hide one in an ssh
//! option (`ProxyCommand`, `LocalCommand`, `KnownHostsCommand`, `Match exec` in a `-F`
//! file). An allowlist, because ssh keeps gaining options.

/// Options taking no value.
const FLAGS: &[&str] = &["-4", "-6", "-q", "-T", "-x"];

/// Options whose value is the next word (or attached: `-p22`).
const WITH_VALUE: &[&str] = &["-i", "-p"];

/// `-o` keywords that only tune the connection (compared case-insensitively, as ssh does).
const OPTION_KEYWORDS: &[&str] = &[
    "AddressFamily",
    "BatchMode",
    "CheckHostIP",
    "Compression",
    "ConnectionAttempts",
    "ConnectTimeout",
    "GlobalKnownHostsFile",
    "HostKeyAlias",
    "IdentitiesOnly",
    "IdentityFile",
    "LogLevel",
    "Port",
    "ServerAliveCountMax",
    "ServerAliveInterval",
    "StrictHostKeyChecking",
    "UserKnownHostsFile",
];

/// Why `prefix` is not an ssh invocation the remediator accepts, if it is not.
pub fn prefix_problem(prefix: &[String]) -> Option<String> {
    let Some((program, options)) = prefix.split_first() else {
        return Some("ssh.argv_prefix must name the ssh binary".into());
    };
    let path = std::path::Path::new(program);
    if !path.is_absolute() || path.file_name().and_then(|n| n.to_str()) != Some("ssh") {
        return Some(format!(
            "ssh.argv_prefix must start with the absolute path of the ssh binary \
             (e.g. /usr/bin/ssh), not {program:?}"
        ));
    }
    let mut words = options.iter();
    while let Some(word) = words.next() {
        if FLAGS.contains(&word.as_str()) {
            continue;
        }
        if let Some(flag) = WITH_VALUE.iter().find(|f| word.starts_with(**f)) {
            if word.len() == flag.len() && words.next().is_none() {
                return Some(format!("ssh.argv_prefix: {flag} needs a value"));
            }
            continue;
        }
        let option = match word.strip_prefix("-o") {
            Some("") => words.next().map(String::as_str).unwrap_or(""),
            Some(attached) => attached,
            None => return Some(refused(word)),
        };
        let keyword = option
            .split(['=', ' ', '\t'])
            .next()
            .unwrap_or_default()
            .trim();
        if !OPTION_KEYWORDS
            .iter()
            .any(|k| k.eq_ignore_ascii_case(keyword))
        {
            return Some(format!(
                "ssh.argv_prefix: -o {keyword:?} is not allowed (options that could run a \
                 command are refused; allowed: {})",
                OPTION_KEYWORDS.join(", ")
            ));
        }
    }
    None
}

fn refused(word: &str) -> String {
    format!(
        "ssh.argv_prefix: {word:?} is not allowed (allowed: {} {}, and -o with a connection \
         keyword; -F and commands are refused because they can run programs)",
        FLAGS.join(" "),
        WITH_VALUE
            .iter()
            .map(|f| format!("{f} VALUE"))
            .collect::<Vec<_>>()
            .join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn ssh_with_connection_options_is_accepted() {
        for ok in [
            &["/usr/bin/ssh"][..],
            &["/usr/bin/ssh", "-i", "/etc/k", "-p", "22", "-q"],
            &["/usr/bin/ssh", "-o", "ConnectTimeout=10", "-oBatchMode=yes"],
            &[
                "/usr/local/bin/ssh",
                "-o",
                "stricthostkeychecking yes",
                "-p2222",
            ],
        ] {
            assert_eq!(prefix_problem(&words(ok)), None, "{ok:?}");
        }
    }

    #[test]
    fn programs_and_command_running_options_are_refused() {
        for bad in [
            &[][..],
            &["ssh"],
            &["/bin/sh", "-c", "id"],
            &["/usr/bin/sshpass", "-p", "x"],
            &["/usr/bin/ssh", "-o", "ProxyCommand=sh -c id"],
            &["/usr/bin/ssh", "-oLocalCommand=id"],
            &["/usr/bin/ssh", "-o", "PermitLocalCommand=yes"],
            &["/usr/bin/ssh", "-o", "KnownHostsCommand=/bin/id"],
            &["/usr/bin/ssh", "-F", "/tmp/config"],
            &["/usr/bin/ssh", "-J", "jump"],
            &["/usr/bin/ssh", "-i"],
            &["/usr/bin/ssh", "-o"],
            &["/usr/bin/ssh", "id"],
        ] {
            assert!(prefix_problem(&words(bad)).is_some(), "{bad:?} accepted");
        }
    }
}
