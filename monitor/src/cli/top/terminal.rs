//! Entering and leaving the full-screen mode, so that every way out (quit, Ctrl-C,
//! SIGINT/SIGTERM/SIGHUP, a panic) leaves the user's terminal as it was.

use crossterm::{cursor, execute, terminal};
use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the signal handler; the event loop checks it between events.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// True once SIGINT, SIGTERM or SIGHUP arrived.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Raw mode and the alternate screen while alive; restored on drop.
pub struct Screen {
    _private: (),
}

impl Screen {
    pub fn enter(stdout: &mut Stdout) -> io::Result<Screen> {
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            // SAFETY: the handler only stores to an atomic (async-signal-safe).
            unsafe {
                libc::signal(signal, on_signal as *const () as libc::sighandler_t);
            }
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
        terminal::enable_raw_mode()?;
        let screen = Screen { _private: () };
        execute!(stdout, terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(screen)
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen, shows the cursor and ends raw mode (idempotent).
fn restore() {
    let _ = execute!(io::stdout(), cursor::Show, terminal::LeaveAlternateScreen);
    let _ = terminal::disable_raw_mode();
}
