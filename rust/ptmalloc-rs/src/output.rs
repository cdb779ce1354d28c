//! Text out of the allocator without allocating: a stack buffer flushed with
//! `write(2)` or `fwrite`, and the fatal-error path.

use core::fmt;

use crate::lock::Lock;

/// Held while `malloc_stats` prints, so concurrent calls do not interleave
/// (taken before any allocator lock; reset in a fork child).
pub static STATS_OUTPUT_LOCK: Lock = Lock::new();

/// Where formatted text goes.
pub enum Sink {
    /// A file descriptor, written with `write(2)`.
    Fd(libc::c_int),
    /// A stdio stream (may allocate inside stdio: never use under the lock).
    File(*mut libc::FILE),
}

/// A `fmt::Write` that buffers 512 bytes on the stack.
pub struct Writer {
    sink: Sink,
    buf: [u8; 512],
    len: usize,
    failed: bool,
}

impl Writer {
    /// A writer to `sink`.
    pub fn new(sink: Sink) -> Self {
        Writer {
            sink,
            buf: [0; 512],
            len: 0,
            failed: false,
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        match self.sink {
            Sink::Fd(fd) => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    // The raw system call: libc's write() is a thread
                    // cancellation point, and malloc_stats must not be one.
                    // SAFETY: writes from a live buffer to a descriptor.
                    let n = unsafe { libc::syscall(libc::SYS_write, fd, rest.as_ptr(), rest.len()) } as isize;
                    if n <= 0 {
                        // SAFETY: reads this thread's errno.
                        if n < 0 && unsafe { *libc::__errno_location() } == libc::EINTR {
                            continue;
                        }
                        self.failed = true;
                        return;
                    }
                    rest = &rest[n as usize..];
                }
            }
            Sink::File(fp) => {
                // SAFETY: the caller handed us a valid FILE*.
                let n = unsafe { libc::fwrite(bytes.as_ptr().cast(), 1, bytes.len(), fp) };
                if n != bytes.len() {
                    self.failed = true;
                }
            }
        }
    }

    /// Write out what is buffered; whether everything was written.
    pub fn flush(&mut self) -> bool {
        let len = self.len;
        self.len = 0;
        let buf = self.buf;
        self.emit(&buf[..len]);
        !self.failed
    }
}

impl fmt::Write for Writer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let bytes = s.as_bytes();
        if self.len + bytes.len() > self.buf.len() {
            self.flush();
            if bytes.len() > self.buf.len() {
                self.emit(bytes);
                return Ok(());
            }
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        Ok(())
    }
}

/// Print a corruption message as glibc does (`malloc_printerr`): the
/// message and a newline on standard error.
#[cold]
pub fn report(message: &str) {
    let mut w = Writer::new(Sink::Fd(2));
    let _ = fmt::Write::write_str(&mut w, message);
    let _ = fmt::Write::write_str(&mut w, "\n");
    w.flush();
}

/// Report heap corruption and abort, as glibc does.
#[cold]
pub fn fatal(message: &str) -> ! {
    report(message);
    // SAFETY: abort never returns and needs no allocation.
    unsafe { libc::abort() }
}
