//! gplogger's line format: `20261121:16:05:38:021003 gprecoverseg:cdw:gpadmin-[INFO]:-text`.

use chrono::Local;

pub struct GpLog {
    program: &'static str,
    host: String,
}

impl GpLog {
    pub fn new(program: &'static str, host: &str) -> Self {
        GpLog {
            program,
            host: host.to_string(),
        }
    }

    pub fn line(&self, level: &str, msg: &str) -> String {
        format!(
            "{}:{:06} {}:{}:gpadmin-[{level}]:-{msg}",
            Local::now().format("%Y%m%d:%H:%M:%S"),
            std::process::id() % 1_000_000,
            self.program,
            self.host
        )
    }

    pub fn info(&self, msg: &str) {
        println!("{}", self.line("INFO", msg));
    }
    pub fn warn(&self, msg: &str) {
        println!("{}", self.line("WARNING", msg));
    }
    pub fn error(&self, msg: &str) {
        println!("{}", self.line("ERROR", msg));
    }
    pub fn critical(&self, msg: &str) {
        println!("{}", self.line("CRITICAL", msg));
    }
    pub fn rule(&self) {
        self.info("----------------------------------------------------------");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn lines_have_the_gplogger_shape() {
        let l = super::GpLog::new("gprecoverseg", "cdw")
            .line("INFO", "Starting gprecoverseg with args: -a");
        let (stamp, rest) = l.split_once(' ').unwrap_or_default();
        assert_eq!(stamp.len(), "20261121:16:05:38:021003".len());
        assert!(
            rest.starts_with(
                "gprecoverseg:cdw:gpadmin-[INFO]:-Starting gprecoverseg with args: -a"
            ),
            "{rest}"
        );
    }
}
