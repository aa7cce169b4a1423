//! What the echo and TLS benchmarks measure the same way (included by each
//! with `#[path]`): a counting allocator (allocations and net live bytes per
//! thread), a thread's CPU and allocation sample, and one round's figures
//! and their summary over rounds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use crate::common::{ServerThread, median};

/// Wraps the system allocator; counts, per thread, how many allocations the
/// thread made and how many bytes it allocated minus freed. Every server's
/// work happens on its own thread, so that thread's counters are the
/// server's.
pub struct Counting;

thread_local! {
    static T_ALLOCS: Cell<u64> = const { Cell::new(0) };
    static T_NET: Cell<i64> = const { Cell::new(0) };
}

#[inline]
fn note(delta: i64, allocs: u64) {
    let _ = T_NET.try_with(|c| c.set(c.get() + delta));
    if allocs != 0 {
        let _ = T_ALLOCS.try_with(|c| c.set(c.get() + allocs));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size() as i64, 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            note(layout.size() as i64, 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        note(-(layout.size() as i64), 0);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            note(new_size as i64 - layout.size() as i64, 1);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What one thread has consumed so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub user_us: f64,
    pub sys_us: f64,
    pub allocs: u64,
    pub net_bytes: i64,
}

impl Sample {
    /// Read the calling thread's counters.
    pub fn this_thread() -> Sample {
        let cpu = crate::common::Cpu::this_thread();
        Sample {
            user_us: cpu.user_us,
            sys_us: cpu.sys_us,
            allocs: T_ALLOCS.with(Cell::get),
            net_bytes: T_NET.with(Cell::get),
        }
    }

    pub fn since(self, before: Sample) -> Sample {
        Sample {
            user_us: self.user_us - before.user_us,
            sys_us: self.sys_us - before.sys_us,
            allocs: self.allocs - before.allocs,
            net_bytes: self.net_bytes - before.net_bytes,
        }
    }
}

/// The server thread's counters, read on the server thread.
pub async fn sample(thread: &ServerThread) -> Sample {
    thread.run(async { Sample::this_thread() }).await
}

/// What one measured round produced.
#[derive(Debug, Default)]
pub struct Round {
    /// Requests, connections, or (bulk) bytes echoed.
    pub ops: u64,
    pub elapsed: Duration,
    pub cpu: Sample,
    /// Per-operation latencies in ns (request/response, churn, handshakes).
    pub lat_ns: Vec<u64>,
}

/// Figures in the scenario's units (per round, or the medians).
#[derive(Debug, Clone, Copy)]
pub struct Figures {
    /// ops/s, or MB/s for bulk.
    pub rate: f64,
    pub p99_us: f64,
    /// Server user CPU per op, or per MB for bulk.
    pub user_us: f64,
    /// Server user + system CPU per op (or MB).
    pub total_us: f64,
    pub allocs: f64,
}

impl Round {
    /// Operations in the scenario's unit (MB when `per_mb`: bulk).
    pub fn units(&self, per_mb: bool) -> f64 {
        if per_mb {
            self.ops as f64 / 1e6
        } else {
            self.ops as f64
        }
        .max(1e-9)
    }

    pub fn figures(&self, per_mb: bool) -> Figures {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let units = self.units(per_mb);
        let p99_us = if self.lat_ns.is_empty() {
            f64::NAN
        } else {
            let mut v = self.lat_ns.clone();
            v.sort_unstable();
            let i = ((v.len() as f64 * 0.99).ceil() as usize).clamp(1, v.len()) - 1;
            v[i] as f64 / 1e3
        };
        Figures {
            rate: units / secs,
            p99_us,
            user_us: self.cpu.user_us / units,
            total_us: (self.cpu.user_us + self.cpu.sys_us) / units,
            allocs: self.cpu.allocs as f64 / units,
        }
    }
}

/// One server's result for one scenario.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Medians over the rounds.
    pub med: Figures,
    /// User CPU per unit over all rounds together (total user time / total
    /// units): the user/system split is tick-sampled, so pooling the rounds
    /// gives the steadiest estimate.
    pub pooled_user_us: f64,
}

pub fn summarize(rounds: &[Round], per_mb: bool) -> Summary {
    let figs: Vec<Figures> = rounds.iter().map(|r| r.figures(per_mb)).collect();
    let med = Figures {
        rate: median(figs.iter().map(|f| f.rate).collect()),
        p99_us: median(figs.iter().map(|f| f.p99_us).collect()),
        user_us: median(figs.iter().map(|f| f.user_us).collect()),
        total_us: median(figs.iter().map(|f| f.total_us).collect()),
        allocs: median(figs.iter().map(|f| f.allocs).collect()),
    };
    let user: f64 = rounds.iter().map(|r| r.cpu.user_us).sum();
    let units: f64 = rounds.iter().map(|r| r.units(per_mb)).sum();
    Summary {
        med,
        pooled_user_us: if rounds.is_empty() {
            f64::NAN
        } else {
            user / units
        },
    }
}
