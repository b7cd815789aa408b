//! The daemon's log: env_logger on stderr (the journal under systemd), with one filter.
//!
//! The object's BTF loads (build.rs makes its type names ones the kernel accepts, see
//! `kernel::btf_names`). Should a kernel still reject it, aya logs that as one WARN
//! record whose text is the kernel's whole verifier log (hundreds of lines) on every
//! start. The programs load without it (the object carries no BTF relocations, or aya
//! would have failed the load), so that record becomes one line saying what happened and
//! what it costs; `monitor check`'s "btf" line and bpftool tell the rest.

use log::{Level, Log, Metadata, Record};

/// The start of aya's message (aya-0.14 `EbpfLoader::load`).
const BTF_REJECTED: &str = "object BTF couldn't be loaded in the kernel";

/// Wraps the real logger and shortens aya's BTF dump to one line.
struct Filtered<L> {
    inner: L,
}

/// The one line that replaces the dump: the syscall's error and the verifier log's last
/// line (where the kernel says what it did not accept).
pub fn btf_line(message: &str) -> Option<String> {
    let rest = message.strip_prefix(BTF_REJECTED)?.trim_start_matches(':');
    let error = rest
        .split("Verifier output:")
        .next()
        .unwrap_or("")
        .trim()
        .trim_end_matches('.');
    let last = rest
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .filter(|l| !error.contains(l))
        .unwrap_or("");
    let clip = |s: &str| s.chars().take(120).collect::<String>();
    let reason = if last.is_empty() {
        clip(error)
    } else {
        format!("{}: {}", clip(error), clip(last))
    };
    Some(format!(
        "the kernel rejected the eBPF object's BTF ({reason}); the programs load and run \
         without it (only BTF-based introspection such as bpftool's map pretty-printing is \
         missing)"
    ))
}

impl<L: Log> Log for Filtered<L> {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &Record) {
        if record.level() == Level::Warn && record.target().starts_with("aya") {
            let message = record.args().to_string();
            if let Some(line) = btf_line(&message) {
                self.inner.log(
                    &Record::builder()
                        .args(format_args!("{line}"))
                        .level(Level::Info)
                        .target("monitor::kernel")
                        .build(),
                );
                return;
            }
        }
        self.inner.log(record)
    }

    fn flush(&self) {
        self.inner.flush()
    }
}

/// Installs the logger: level `info` unless RUST_LOG says otherwise, no timestamps (the
/// journal adds its own).
pub fn init() {
    let inner = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp(None)
        .build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(Filtered { inner })).is_ok() {
        log::set_max_level(max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_btf_dump_becomes_one_line() {
        let dump = format!(
            "{BTF_REJECTED}: the BPF_BTF_LOAD syscall returned Invalid argument (os error 22). \
             Verifier output: magic: 0xeb9f\nversion: 1\n{}[301] FUNC  Invalid name\n\n",
            "[1] PTR (anon) type_id=3\n".repeat(300)
        );
        let line = btf_line(&dump).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(
            line,
            "the kernel rejected the eBPF object's BTF (the BPF_BTF_LOAD syscall returned \
             Invalid argument (os error 22): [301] FUNC  Invalid name); the programs load and \
             run without it (only BTF-based introspection such as bpftool's map \
             pretty-printing is missing)"
        );
        assert_eq!(btf_line("some other warning"), None);
    }
}
