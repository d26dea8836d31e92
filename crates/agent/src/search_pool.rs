//! The threads that run knowledge searches: one per core, taking searches from one queue in
//! the order they came. A search is short and CPU-bound. Run on the shared blocking pool, as
//! many run at once as there are requests, and they share the cores in time slices, which
//! stretches every one of them; here each runs at full speed, and a thread goes straight on
//! to the next search without sleeping in between.

use std::thread;

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of search threads fed by one queue.
pub struct SearchPool {
    queue: crossbeam_channel::Sender<Job>,
}

impl SearchPool {
    /// Starts `threads` search threads (at least one).
    pub fn new(threads: usize) -> std::io::Result<SearchPool> {
        let (queue, jobs) = crossbeam_channel::unbounded::<Job>();
        for n in 0..threads.max(1) {
            let jobs = jobs.clone();
            thread::Builder::new()
                .name(format!("search-{n}"))
                .spawn(move || {
                    for job in jobs {
                        job();
                    }
                })?;
        }
        Ok(SearchPool { queue })
    }

    /// One search thread per core of this machine.
    pub fn per_core() -> std::io::Result<SearchPool> {
        SearchPool::new(thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// Runs `work` on a search thread; `None` when it panicked or the pool is gone.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move || {
            if let Ok(value) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
                let _ = answer.send(value);
            }
        });
        self.queue.send(job).ok()?;
        answered.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_and_survives_a_panic() {
        let pool = SearchPool::new(2).expect("pool");
        assert_eq!(pool.run(|| 2 + 2).await, Some(4));
        assert_eq!(pool.run(|| -> i32 { panic!("boom") }).await, None);
        assert_eq!(pool.run(|| "still here").await, Some("still here"));
    }
}
