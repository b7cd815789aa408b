//! Running external commands (ip, nft, cargo, monitor) so that a failure names the exact
//! command line, its exit status and what it printed on stderr.

use anyhow::{Context as _, Result, bail};
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The command line as a shell user would type it, for error messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion with captured output; a non-zero exit is an error carrying
/// the command line and its stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let output = output(cmd)?;
    if !output.status.success() {
        bail!("{}", failure(cmd, &output));
    }
    Ok(output)
}

/// Runs `cmd` with captured output and returns it whatever the exit status, failing only
/// when the program cannot be started.
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run `{}`", describe(cmd)))
}

/// Like [`output`], but kills the command if it has not finished within `timeout`, so a
/// hung peer (say, a daemon that accepts but never answers) cannot stall a test.
pub fn output_timeout(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{}`", describe(cmd)))?;
    // Drain both pipes while waiting: a large report must not block the child on a full
    // pipe and turn into a false timeout.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("`{}` did not finish within {timeout:?}", describe(cmd));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// "`cmd` failed (exit status: 1): <stderr>" for a finished command.
pub fn failure(cmd: &Command, output: &Output) -> String {
    format!(
        "`{}` failed ({}): {}",
        describe(cmd),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    )
}
