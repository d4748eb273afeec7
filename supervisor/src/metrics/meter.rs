//! A meter: a count of events and their rates, as the original's metrics library kept them.
//!
//! The 1-, 5- and 15-minute rates are exponentially weighted moving averages that decay every
//! [`TICK`]. Nothing runs on a timer: a meter catches up on the ticks it missed whenever it is
//! marked or read, so a daemon nobody asks pays nothing for its meters.

use std::time::{Duration, Instant};

use protocol::Rates;

/// How often the moving averages take in what was counted since the last tick.
const TICK: Duration = Duration::from_secs(5);

pub struct Meter {
    count: u64,
    started: Instant,
    last_tick: Instant,
    /// Marked since the last tick.
    uncounted: u64,
    m1: Ewma,
    m5: Ewma,
    m15: Ewma,
}

impl Meter {
    pub fn new(now: Instant) -> Meter {
        Meter {
            count: 0,
            started: now,
            last_tick: now,
            uncounted: 0,
            m1: Ewma::new(1.0),
            m5: Ewma::new(5.0),
            m15: Ewma::new(15.0),
        }
    }

    pub fn mark(&mut self, now: Instant) {
        self.add(1, now);
    }

    pub fn add(&mut self, events: u64, now: Instant) {
        self.catch_up(now);
        self.count += events;
        self.uncounted += events;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn rates(&mut self, now: Instant) -> Rates {
        self.catch_up(now);
        let elapsed = now.saturating_duration_since(self.started).as_secs_f64();
        Rates {
            m1: self.m1.per_second(),
            m5: self.m5.per_second(),
            m15: self.m15.per_second(),
            mean: if elapsed > 0.0 {
                self.count as f64 / elapsed
            } else {
                0.0
            },
        }
    }

    /// Applies every tick that fell due before `now`: the first takes in what was counted since
    /// the last one, the rest saw nothing and only decay.
    fn catch_up(&mut self, now: Instant) {
        let due = now.saturating_duration_since(self.last_tick).as_nanos() / TICK.as_nanos();
        if due == 0 {
            return;
        }
        let due = u32::try_from(due).unwrap_or(u32::MAX);
        for ewma in [&mut self.m1, &mut self.m5, &mut self.m15] {
            ewma.tick(self.uncounted, due);
        }
        self.uncounted = 0;
        self.last_tick += TICK * due;
    }
}

/// One exponentially weighted moving average of a rate, in events per tick interval.
struct Ewma {
    alpha: f64,
    /// Events per second; `None` until the first tick, which sets it outright.
    rate: Option<f64>,
}

impl Ewma {
    fn new(minutes: f64) -> Ewma {
        Ewma {
            alpha: 1.0 - (-TICK.as_secs_f64() / 60.0 / minutes).exp(),
            rate: None,
        }
    }

    /// `ticks` ticks: the first saw `counted` events, the others none.
    fn tick(&mut self, counted: u64, ticks: u32) {
        let instant = counted as f64 / TICK.as_secs_f64();
        let rate = match self.rate {
            None => instant,
            Some(rate) => rate + self.alpha * (instant - rate),
        };
        let idle = i32::try_from(ticks - 1).unwrap_or(i32::MAX);
        self.rate = Some(rate * (1.0 - self.alpha).powi(idle));
    }

    fn per_second(&self) -> f64 {
        self.rate.unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_follow_a_steady_stream_and_decay_when_it_stops() {
        let t0 = Instant::now();
        let mut meter = Meter::new(t0);
        // 10 events a second for 15 minutes.
        for tenth in 0..9000u64 {
            meter.mark(t0 + Duration::from_millis(tenth * 100));
        }
        let rates = meter.rates(t0 + Duration::from_secs(900));
        assert_eq!(meter.count(), 9000);
        for rate in [rates.m1, rates.m5, rates.m15, rates.mean] {
            assert!((9.0..=10.5).contains(&rate), "{rates:?}");
        }
        // An hour of silence: the 1-minute rate is gone, the 15-minute one nearly so.
        let later = meter.rates(t0 + Duration::from_secs(900 + 3600));
        assert!(later.m1 < 1e-9, "{later:?}");
        assert!(later.m15 < rates.m15 * 0.05, "{later:?}");
        assert!((later.mean - 9000.0 / 4500.0).abs() < 1e-9);
    }

    #[test]
    fn an_unread_meter_has_no_rate_yet() {
        let t0 = Instant::now();
        let mut meter = Meter::new(t0);
        meter.mark(t0);
        let rates = meter.rates(t0 + Duration::from_secs(1));
        assert_eq!((rates.m1, rates.m5, rates.m15), (0.0, 0.0, 0.0));
        assert!((rates.mean - 1.0).abs() < 1e-9);
    }
}
