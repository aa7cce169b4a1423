//! What the benchmarks share: a dedicated server thread running a
//! `current_thread` runtime (so the server's CPU time is one thread's), CPU
//! pinning, the calling thread's CPU time, and the median.

use std::future::Future;

use tokio::runtime::Handle;

/// Pin the calling thread to `cpu` (if the machine has it).
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside
    // it; pid 0 is the calling thread; sched_setaffinity only reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// A dedicated thread running a `current_thread` runtime, for one server.
pub struct ServerThread {
    handle: Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    join: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Start the thread (pinned to `pin` if given) and its runtime.
    pub fn spawn(name: &str, pin: Option<usize>) -> ServerThread {
        let (htx, hrx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let join = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                if let Some(cpu) = pin {
                    pin_to_cpu(cpu);
                }
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                htx.send(rt.handle().clone()).expect("send handle");
                rt.block_on(async {
                    let _ = stop_rx.await;
                });
            })
            .expect("spawn server thread");
        let handle = hrx.recv().expect("server runtime handle");
        ServerThread {
            handle,
            stop: Some(stop_tx),
            join: Some(join),
        }
    }

    /// Run `f` on the server thread and wait for its result.
    pub async fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(f).await.expect("server-thread task")
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(join) = self.join.take() {
            let _ = join.join();
        }
    }
}

/// CPU time a thread has used so far, in microseconds.
#[derive(Debug, Clone, Copy, Default)]
#[allow(dead_code)] // not every benchmark reads it
pub struct Cpu {
    pub user_us: f64,
    pub sys_us: f64,
}

#[allow(dead_code)] // not every benchmark reads it
impl Cpu {
    /// Read the calling thread's counters (`getrusage(RUSAGE_THREAD)`).
    pub fn this_thread() -> Cpu {
        // SAFETY: getrusage only writes the struct we hand it, and a zeroed
        // rusage is a valid value of that plain C struct.
        let ru = unsafe {
            let mut ru: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut ru);
            ru
        };
        let us = |tv: libc::timeval| tv.tv_sec as f64 * 1e6 + tv.tv_usec as f64;
        Cpu {
            user_us: us(ru.ru_utime),
            sys_us: us(ru.ru_stime),
        }
    }
}

/// The median, ignoring NaNs (NaN if nothing is left).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| !x.is_nan());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}
