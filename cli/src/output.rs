//! Input and output: text or `--json` on stdout, stdin, and files created for secrets.

use std::fs;
use std::io::{self, IsTerminal as _, Read as _, Write};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde::Serialize;
use tokio::io::AsyncWrite;
use zeroize::Zeroizing;

use crate::error::CliError;

/// Where results go: text lines, or one JSON document with `--json`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether `--json` was given.
    pub(crate) fn is_json(self) -> bool {
        self.json
    }

    /// Prints `value` as JSON with `--json`, else the text `text` builds.
    pub(crate) fn print<T: Serialize>(
        self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> Result<(), CliError> {
        if self.json {
            let mut out = io::stdout().lock();
            serde_json::to_writer(&mut out, value)
                .map_err(|e| CliError::new(format!("writing json to stdout: {e}")))?;
            writeln!(out).map_err(|e| CliError::stdio("writing stdout", &e))
        } else {
            write_stdout(text().as_bytes())
        }
    }
}

/// Writes bytes to stdout and flushes.
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::stdio("writing stdout", &e))
}

/// Reads all of stdin; the buffer is zeroed when dropped.
pub(crate) fn read_stdin() -> Result<Zeroizing<Vec<u8>>, CliError> {
    let mut buf = Zeroizing::new(Vec::new());
    io::stdin()
        .lock()
        .read_to_end(&mut buf)
        .map_err(|e| CliError::stdio("reading stdin", &e))?;
    Ok(buf)
}

/// Drops one trailing `\n` (or `\r\n`).
pub(crate) fn strip_newline(buf: &mut Zeroizing<Vec<u8>>) {
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
}

/// A password: stdin without one trailing newline when stdin is not a terminal, else a
/// no-echo prompt on the terminal.
pub(crate) fn read_password(confirm: bool) -> Result<Zeroizing<Vec<u8>>, CliError> {
    if !io::stdin().is_terminal() {
        let mut buf = read_stdin()?;
        strip_newline(&mut buf);
        return Ok(buf);
    }
    let prompt = |text: &str| {
        rpassword::prompt_password(text)
            .map(|p| Zeroizing::new(p.into_bytes()))
            .map_err(|e| CliError::stdio("reading the password from the terminal", &e))
    };
    let first = prompt("Password: ")?;
    if confirm && prompt("Password again: ")? != first {
        return Err(CliError::new("the passwords do not match").hint("run the command again"));
    }
    Ok(first)
}

/// Creates `path` for secret output: mode 0600 on Unix, refused if it exists.
pub(crate) fn create_secret_file(path: &Path) -> Result<fs::File, CliError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
        .open(path)
        .map_err(|e| CliError::io("creating", path, &e))
}

/// Writes `bytes` to a new file `path` (mode 0600 on Unix) all or nothing: into a temporary
/// file beside it, synced, then linked into place (refused if `path` exists) and the
/// temporary name removed. A failure leaves no file at `path`.
pub(crate) fn write_secret_file_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let name = path
        .file_name()
        .ok_or_else(|| CliError::new(format!("{} is not a file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = create_secret_file(&tmp).and_then(|mut f| {
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| CliError::io("writing", &tmp, &e))
    });
    let linked = written
        .and_then(|()| fs::hard_link(&tmp, path).map_err(|e| CliError::io("creating", path, &e)));
    let _ = fs::remove_file(&tmp);
    linked?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The new name must survive a crash; a directory that cannot be synced is not an error.
        let _ = fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

/// An [`AsyncWrite`] over a blocking writer (stdout, a file): the command line runs one task
/// on a current-thread runtime, so blocking it blocks nothing else.
#[derive(Debug)]
pub(crate) struct BlockingWriter<W>(pub(crate) W);

impl<W: Write + Unpin> AsyncWrite for BlockingWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(self.get_mut().0.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.get_mut().0.flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}
