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
