//! Backend health (seed 004): consecutive failures, or an error rate over the recent attempts,
//! put a backend (provider + model) in cooldown; while cooling it is skipped if another attempt in the plan is eligible; when the
//! cooldown ends one request is let through as a half-open probe, whose outcome decides between
//! recovery and another cooldown. Fed by the attempts' real outcomes; no background checks.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub consecutive_failures: u32,
    pub cooldown: Duration,
    /// Cool down when at least this share of the last `error_rate_window` attempts failed
    /// (catches a flaky backend that never fails `consecutive_failures` times in a row).
    /// Above 1.0 the rule is off.
    pub error_rate: f64,
    /// Attempts the error rate is computed over (at most 64); also the minimum sample.
    pub error_rate_window: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            consecutive_failures: 3,
            cooldown: Duration::from_secs(30),
            error_rate: 0.5,
            error_rate_window: 20,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    cooling_until: Option<Instant>,
    probing: bool,
    /// The last outcomes, newest in bit 0; a set bit is a failure.
    recent: u64,
    /// How many outcomes `recent` holds (saturates at 64).
    seen: u32,
}

impl State {
    fn push(&mut self, failed: bool) {
        self.recent = (self.recent << 1) | u64::from(failed);
        self.seen = (self.seen + 1).min(64);
    }

    /// Failure share of the last `window` outcomes, once that many were seen.
    fn error_rate(&self, window: u32) -> Option<f64> {
        let window = window.clamp(1, 64);
        if self.seen < window {
            return None;
        }
        let mask = if window == 64 {
            u64::MAX
        } else {
            (1u64 << window) - 1
        };
        Some(f64::from((self.recent & mask).count_ones()) / f64::from(window))
    }
}

#[derive(Debug, Default)]
pub struct Health {
    backends: Mutex<HashMap<String, State>>,
    /// EWMA of each backend's time to first token (ms), from real traffic.
    latency: Mutex<HashMap<String, f64>>,
}

/// Weight of the newest sample in the latency EWMA.
const EWMA_ALPHA: f64 = 0.3;

/// Identifies a backend across requests.
pub fn backend_key(provider: &str, model: &str) -> String {
    format!("{provider}/{model}")
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
        self.backends.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Which of `backends` (a plan, in order) to skip now. Never skips all of them; a backend
    /// whose cooldown has ended is admitted once as the probe.
    pub fn skips(&self, backends: &[String], now: Instant) -> Vec<bool> {
        let mut map = self.lock();
        let mut skip: Vec<bool> = backends
            .iter()
            .map(|b| match map.get_mut(b) {
                Some(s) => match s.cooling_until {
                    Some(until) if now < until => true,
                    Some(_) if s.probing => true,
                    Some(_) => {
                        s.probing = true;
                        false
                    }
                    None => false,
                },
                None => false,
            })
            .collect();
        if skip.iter().all(|&s| s) {
            skip.iter_mut().for_each(|s| *s = false);
        }
        skip
    }

    /// Feed one attempt's outcome; true when it put the backend into cooldown.
    pub fn report(&self, backend: &str, ok: bool, policy: Policy, now: Instant) -> bool {
        let mut map = self.lock();
        let s = map.entry(backend.to_string()).or_default();
        s.push(!ok);
        let was_probe = s.probing;
        s.probing = false;
        if ok {
            // A request admitted before the cooldown began may still succeed during it; only
            // the probe (after the cooldown) decides recovery.
            if s.cooling_until.is_some_and(|until| now < until) {
                return false;
            }
            if s.cooling_until.take().is_some() {
                tracing::info!(backend, "backend recovered");
                // A fresh start: the failures that caused the cooldown must not re-trigger it.
                s.recent = 0;
                s.seen = 0;
            }
            s.failures = 0;
            return false;
        }
        s.failures += 1;
        let rate = s.error_rate(policy.error_rate_window);
        let by_rate = rate.is_some_and(|r| r >= policy.error_rate);
        if was_probe || by_rate || s.failures >= policy.consecutive_failures.max(1) {
            s.cooling_until = Some(now + policy.cooldown);
            // The next verdict comes from the probe, not from the outcomes that led here.
            s.recent = 0;
            s.seen = 0;
            tracing::warn!(
                backend,
                consecutive_failures = s.failures,
                error_rate = rate.unwrap_or(0.0),
                cooldown_ms = policy.cooldown.as_millis() as u64,
                "backend cooling down"
            );
            return true;
        }
        false
    }

    pub fn observe_latency(&self, backend: &str, ms: f64) {
        let mut map = self.latency.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(backend.to_string()).or_insert(ms);
        *e = EWMA_ALPHA * ms + (1.0 - EWMA_ALPHA) * *e;
    }

    pub fn latency_ms(&self, backend: &str) -> Option<f64> {
        self.latency
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(backend)
            .copied()
    }

    /// Backends currently cooling down, for `/admin/status`.
    pub fn cooling(&self, now: Instant) -> Vec<String> {
        let mut v: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, s)| s.cooling_until.is_some_and(|u| now < u))
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        consecutive_failures: 2,
        cooldown: Duration::from_secs(10),
        error_rate: 2.0,
        error_rate_window: 20,
    };

    #[test]
    fn error_rate_cools_a_flaky_backend() {
        let h = Health::default();
        let t0 = Instant::now();
        let policy = Policy {
            consecutive_failures: 5,
            error_rate: 0.5,
            error_rate_window: 10,
            ..P
        };
        let plan = vec!["a/m".to_string(), "b/m".to_string()];
        // Alternating failures never reach 5 in a row; 40 % stays under the threshold.
        for i in 0..10 {
            h.report("a/m", i % 5 < 3, policy, t0);
        }
        assert_eq!(h.skips(&plan, t0), [false, false], "4 of 10 failed");
        for i in 0..10 {
            h.report("a/m", i % 2 == 0, policy, t0);
        }
        assert_eq!(h.skips(&plan, t0), [true, false], "5 of the last 10 failed");
        // The probe succeeds: recovered, with a clean window.
        let later = t0 + Duration::from_secs(11);
        assert_eq!(h.skips(&plan, later), [false, false]);
        h.report("a/m", true, policy, later);
        h.report("a/m", false, policy, later);
        assert_eq!(
            h.skips(&plan, later),
            [false, false],
            "one failure after recovery"
        );
    }

    #[test]
    fn cools_after_consecutive_failures_then_probes_once() {
        let h = Health::default();
        let t0 = Instant::now();
        let plan = vec!["a/m".to_string(), "b/m".to_string()];
        h.report("a/m", false, P, t0);
        assert_eq!(
            h.skips(&plan, t0),
            [false, false],
            "one failure is not enough"
        );
        h.report("a/m", false, P, t0);
        assert_eq!(h.skips(&plan, t0), [true, false]);
        assert_eq!(h.cooling(t0), ["a/m"]);
        let later = t0 + Duration::from_secs(11);
        assert_eq!(h.skips(&plan, later), [false, false], "the probe");
        assert_eq!(
            h.skips(&plan, later),
            [true, false],
            "only one probe at a time"
        );
        h.report("a/m", false, P, later);
        assert_eq!(
            h.skips(&plan, later),
            [true, false],
            "failed probe: cooling again"
        );
        let much_later = later + Duration::from_secs(11);
        assert_eq!(h.skips(&plan, much_later), [false, false]);
        h.report("a/m", true, P, much_later);
        assert_eq!(h.skips(&plan, much_later), [false, false]);
        assert!(h.cooling(much_later).is_empty());
    }

    #[test]
    fn never_skips_everything_and_success_resets() {
        let h = Health::default();
        let t0 = Instant::now();
        for _ in 0..2 {
            h.report("a/m", false, P, t0);
        }
        assert_eq!(h.skips(&["a/m".to_string()], t0), [false]);
        h.report("b/m", false, P, t0);
        h.report("b/m", true, P, t0);
        h.report("b/m", false, P, t0);
        assert_eq!(h.skips(&["b/m".to_string()], t0), [false]);
    }
}
