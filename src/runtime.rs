//! A thread of its own with a single-threaded tokio runtime, for the side jobs that must not
//! share the workers' runtimes: the admin listener, the Redis connection manager.

use std::future::Future;
use std::io;
use std::thread::JoinHandle;

/// Runs `task` to its end on a new thread named `name`, on a runtime of its own. A runtime
/// that cannot be built is logged, and `task` does not run.
pub fn spawn_thread<F, Fut>(name: &str, task: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread_name = name.to_owned();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(task()),
                Err(e) => {
                    tracing::error!(error = %e, thread = thread_name, "no runtime: thread stopped")
                }
            }
        })
}

/// After a failed `accept` (out of file descriptors, most likely): said, and a pause, so that
/// an accept loop backs off instead of spinning on the same error. Every listener's loop calls
/// this.
pub async fn accept_failed(error: &std::io::Error, listener: &'static str) {
    tracing::warn!(%error, listener, "accept failed");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

#[cfg(test)]
mod tests {
    #[tokio::test(start_paused = true)]
    async fn a_failed_accept_backs_off() {
        let start = tokio::time::Instant::now();
        let error = std::io::Error::other("too many open files");
        super::accept_failed(&error, "test").await;
        assert!(start.elapsed() >= std::time::Duration::from_millis(50));
    }
}
