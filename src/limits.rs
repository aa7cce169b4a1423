//! Write-buffer watermarks: asyncio's defaults and validation
//! (`_FlowControlMixin._set_write_buffer_limits`).

use crate::TransportError;

/// The default high watermark: 64 KiB, as in CPython and uvloop.
///
/// ```
/// assert_eq!(tokio_transports::WriteLimits::default().high(), tokio_transports::DEFAULT_HIGH_WATER);
/// ```
pub const DEFAULT_HIGH_WATER: usize = 64 * 1024;

/// A valid pair of write-buffer watermarks (`low <= high`). `pause_writing`
/// fires when the buffer goes strictly over `high`; `resume_writing` when it
/// drains to `low` or below.
///
/// The fields are private, so an invalid pair cannot be built: a
/// `WriteLimits` comes from [`WriteLimits::new`] (asyncio's defaults and
/// check) or [`Default`] (64 KiB / 16 KiB).
///
/// ```
/// use tokio_transports::WriteLimits;
/// let l = WriteLimits::default();
/// assert_eq!((l.low(), l.high()), (16 * 1024, 64 * 1024));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLimits {
    /// The low watermark, in bytes.
    pub(crate) low: usize,
    /// The high watermark, in bytes.
    pub(crate) high: usize,
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
    /// asyncio's rules (`set_write_buffer_limits(high, low)`, high first):
    /// neither given → 64 KiB / 16 KiB; only `high` → `low = high / 4`; only
    /// `low` → `high = 4 * low`; `low > high` →
    /// [`TransportError::InvalidLimits`].
    ///
    /// ```
    /// use tokio_transports::{TransportError, WriteLimits};
    /// let l = WriteLimits::new(Some(1000), None)?;
    /// assert_eq!((l.low(), l.high()), (250, 1000));
    /// let l = WriteLimits::new(None, Some(16385))?;
    /// assert_eq!((l.low(), l.high()), (16385, 65540));
    /// assert!(matches!(WriteLimits::new(Some(10), Some(1_000_000)), Err(TransportError::InvalidLimits { .. })));
    /// # Ok::<(), TransportError>(())
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

    /// The watermarks of a TLS transport when none are given: 512 KiB
    /// high, 128 KiB low (CPython's SSL transport).
    ///
    /// ```
    /// let l = tokio_transports::WriteLimits::tls_default();
    /// assert_eq!((l.high(), l.low()), (512 * 1024, 128 * 1024));
    /// ```
    pub const fn tls_default() -> Self {
        WriteLimits {
            low: 128 * 1024,
            high: 512 * 1024,
        }
    }

    /// The low watermark, in bytes: `resume_writing` fires when the buffer
    /// drains to it or below.
    ///
    /// ```
    /// assert_eq!(tokio_transports::WriteLimits::new(Some(100), None)?.low(), 25);
    /// # Ok::<(), tokio_transports::TransportError>(())
    /// ```
    pub fn low(&self) -> usize {
        self.low
    }

    /// The high watermark, in bytes: `pause_writing` fires when the buffer
    /// goes strictly over it.
    ///
    /// ```
    /// assert_eq!(tokio_transports::WriteLimits::new(None, Some(25))?.high(), 100);
    /// # Ok::<(), tokio_transports::TransportError>(())
    /// ```
    pub fn high(&self) -> usize {
        self.high
    }
}
