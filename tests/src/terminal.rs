//! A terminal for interactive clients: runs a command (redis-cli) in a tmux session of its own
//! and reads the screen, as a person would see it.

use std::process::Command;

/// An interactive redis-cli in a tmux terminal of its own (a private tmux server per test, so
/// tests run in parallel); killed on drop.
pub struct Terminal {
    socket: String,
}

/// How long a test waits for the terminal to show something.
pub const SCREEN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

impl Terminal {
    /// Runs `command` in a new 200x50 terminal; when it exits, the terminal shows
    /// `EXITED <status>` and stays open so the test can read what happened.
    pub fn start(command: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let socket = format!("tickdb-cli-{}-{n}", std::process::id());
        let script = format!("{command}; echo EXITED $?; sleep 600");
        let status = Command::new("tmux")
            .args(["-L", &socket, "-f", "/dev/null", "new-session", "-d"])
            .args(["-x", "200", "-y", "50", "sh", "-c", &script])
            .status()
            .expect("run tmux (scripts/install-deps.sh installs it)");
        assert!(status.success(), "tmux new-session failed");
        Self { socket }
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("run tmux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` without pressing Enter.
    pub fn type_text(&self, text: &str) {
        self.tmux(&["send-keys", "-t", "0", "-l", text]);
    }

    pub fn enter(&self) {
        self.tmux(&["send-keys", "-t", "0", "Enter"]);
    }

    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "0", "-S", "-200"])
    }

    /// Waits until the screen contains `needle`; returns the screen.
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the terminal never showed {needle:?}:\n{screen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Types a line, presses Enter and waits for `expected` on the screen after it.
    pub fn run(&self, line: &str, expected: &str) -> String {
        let before = self.screen().len();
        self.type_text(line);
        self.enter();
        let deadline = std::time::Instant::now() + SCREEN_TIMEOUT;
        loop {
            let screen = self.screen();
            let start = screen.find(line).unwrap_or(before.min(screen.len()));
            if screen[start..].contains(expected) {
                return screen;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "after {line:?} the terminal never showed {expected:?}:\n{screen}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let path = self.tmux(&["display-message", "-p", "#{socket_path}"]);
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
        // tmux leaves its socket file behind.
        let path = path.trim();
        if !path.is_empty() {
            let _ = std::fs::remove_file(path);
        }
    }
}
