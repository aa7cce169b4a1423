//! Write-buffer watermarks: asyncio's defaults and validation
//! (`_FlowControlMixin._set_write_buffer_limits`).

use crate::TransportError;

/// The default high watermark: 64 KiB, as in CPython and uvloop.
///
/// ```
/// assert_eq!(tokio_transports::WriteLimits::default().high, tokio_transports::DEFAULT_HIGH_WATER);
/// ```
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// A pair of write-buffer watermarks. `pause_writing` fires when the buffer goes
/// strictly over `high`; `resume_writing` when it drains to `low` or below.
///
/// ```
/// use tokio_transports::WriteLimits;
/// let l = WriteLimits::default();
/// assert_eq!((l.low, l.high), (16 * 1024, 64 * 1024));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLimits {
    /// The low watermark, in bytes.
    pub low: usize,
    /// The high watermark, in bytes.
    pub high: usize,
}

impl Default for WriteLimits {
    fn default() -> Self {
        WriteLimits {
            low: DEFAULT_HIGH_WATER / 4,
            high: DEFAULT_HIGH_WATER,
        }
    }
}

impl WriteLimits {
    /// asyncio's rules: neither given → 64 KiB / 16 KiB; only `high` →
    /// `low = high / 4`; only `low` → `high = 4 * low`; `low > high` → an error.
    ///
    /// ```
    /// use tokio_transports::{TransportError, WriteLimits};
    /// assert_eq!(WriteLimits::new(Some(1000), None).unwrap(), WriteLimits { low: 250, high: 1000 });
    /// assert_eq!(WriteLimits::new(None, Some(16385)).unwrap(), WriteLimits { low: 16385, high: 65540 });
    /// assert!(matches!(WriteLimits::new(Some(1), Some(2)), Err(TransportError::InvalidLimits { .. })));
    /// ```
    pub fn new(high: Option<usize>, low: Option<usize>) -> Result<Self, TransportError> {
        let high = match (high, low) {
            (Some(h), _) => h,
            (None, Some(l)) => l.saturating_mul(4),
            (None, None) => DEFAULT_HIGH_WATER,
        };
        let low = low.unwrap_or(high / 4);
        if low > high {
            return Err(TransportError::InvalidLimits { high, low });
        }
        Ok(WriteLimits { low, high })
    }
}
