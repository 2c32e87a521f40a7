//! Cumulative Prometheus histograms: summing series, the difference between two scrapes, and
//! quantiles interpolated inside a bucket the way PromQL's `histogram_quantile` does.

/// A cumulative histogram: `counts[i]` observations were at most `bounds[i]`. The last bound is
/// `+Inf` when the page had one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// Bucket upper bounds (`le`), ascending.
    pub bounds: Vec<f64>,
    /// Cumulative counts, one per bound.
    pub counts: Vec<f64>,
    /// Sum of all observed values (`_sum`).
    pub sum: f64,
    /// Number of observations (`_count`).
    pub count: f64,
}

impl Histogram {
    /// Builds one from unordered `(le, cumulative count)` pairs.
    pub fn from_buckets(mut buckets: Vec<(f64, f64)>, sum: f64, count: f64) -> Self {
        buckets.retain(|(le, _)| !le.is_nan());
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (bounds, counts) = buckets.into_iter().unzip();
        Histogram {
            bounds,
            counts,
            sum,
            count,
        }
    }

    /// Adds `other` into `self`. Buckets are matched by bound; an empty `self` takes `other`'s
    /// bounds. A bound only one side has keeps its own count (the engine gives every series
    /// the same bounds, so this does not happen with its pages).
    pub fn add(&mut self, other: &Histogram) {
        if self.bounds.is_empty() {
            self.bounds.clone_from(&other.bounds);
            self.counts = vec![0.0; other.bounds.len()];
        }
        for (bound, count) in other.bounds.iter().zip(&other.counts) {
            if let Some(i) = self.bounds.iter().position(|b| b == bound) {
                self.counts[i] += count;
            }
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    /// `self - earlier`: the observations made between two scrapes. `None` when a count went
    /// down or the bounds differ: the engine restarted in between, and the difference means
    /// nothing.
    pub fn since(&self, earlier: &Histogram) -> Option<Histogram> {
        if self.bounds != earlier.bounds || self.count < earlier.count {
            return None;
        }
        let mut counts = Vec::with_capacity(self.counts.len());
        for (now, then) in self.counts.iter().zip(&earlier.counts) {
            if now < then {
                return None;
            }
            counts.push(now - then);
        }
        Some(Histogram {
            bounds: self.bounds.clone(),
            counts,
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        })
    }

    /// Observations in each bucket alone (not cumulative), one per bound.
    pub fn per_bucket(&self) -> Vec<f64> {
        let mut previous = 0.0;
        self.counts
            .iter()
            .map(|&c| {
                let in_bucket = (c - previous).max(0.0);
                previous = previous.max(c);
                in_bucket
            })
            .collect()
    }

    /// The total number of observations the buckets hold (the `+Inf` bucket, else the last).
    pub fn total(&self) -> f64 {
        self.counts.last().copied().unwrap_or(0.0)
    }

    /// The mean observation, if there was any.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The `q`-quantile (0 ≤ q ≤ 1), as PromQL's `histogram_quantile` computes it: find the
    /// bucket holding the rank `q × total` and interpolate linearly between its lower and upper
    /// bound (the lowest bucket starts at 0 when its bound is positive). When the rank falls in
    /// the `+Inf` bucket the answer is the highest finite bound. `None` when there are no
    /// observations, fewer than two buckets, no `+Inf` bucket, or `q` is out of range.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) || self.bounds.len() < 2 {
            return None;
        }
        if self.bounds.last() != Some(&f64::INFINITY) {
            return None;
        }
        // Cumulative counts can only grow; a page that says otherwise is read as if they did
        // (PromQL does the same).
        let mut cumulative = Vec::with_capacity(self.counts.len());
        let mut running: f64 = 0.0;
        for &c in &self.counts {
            running = running.max(c);
            cumulative.push(running);
        }
        let total = running;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        let bucket = cumulative.iter().position(|&c| c >= rank)?;
        if bucket == self.bounds.len() - 1 {
            return Some(self.bounds[bucket - 1]);
        }
        let upper = self.bounds[bucket];
        let (lower, below) = if bucket == 0 {
            (if upper > 0.0 { 0.0 } else { upper }, 0.0)
        } else {
            (self.bounds[bucket - 1], cumulative[bucket - 1])
        };
        let in_bucket = cumulative[bucket] - below;
        if in_bucket <= 0.0 {
            return Some(upper);
        }
        Some(lower + (upper - lower) * (rank - below) / in_bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(f64, f64)]) -> Histogram {
        let count = pairs.last().map(|p| p.1).unwrap_or(0.0);
        Histogram::from_buckets(pairs.to_vec(), 0.0, count)
    }

    const INF: f64 = f64::INFINITY;

    #[test]
    fn quantile_interpolates_inside_the_bucket() {
        // 10 observations in (0, 1], 10 in (1, 2].
        let hist = h(&[(1.0, 10.0), (2.0, 20.0), (INF, 20.0)]);
        assert_eq!(hist.quantile(0.5), Some(1.0));
        assert_eq!(hist.quantile(0.25), Some(0.5));
        assert_eq!(hist.quantile(0.75), Some(1.5));
        assert_eq!(hist.quantile(1.0), Some(2.0));
        assert_eq!(hist.quantile(0.0), Some(0.0));
    }

    #[test]
    fn quantile_matches_promql_on_a_known_case() {
        // histogram_quantile(0.9, ...) over buckets 0.1:50 0.5:80 1:95 +Inf:100 gives
        // 0.5 + (1 - 0.5) * (90 - 80) / (95 - 80) = 0.8333...
        let hist = h(&[(0.1, 50.0), (0.5, 80.0), (1.0, 95.0), (INF, 100.0)]);
        let q = hist.quantile(0.9).unwrap();
        assert!((q - 0.833_333_333).abs() < 1e-6, "{q}");
    }

    #[test]
    fn quantile_in_the_inf_bucket_is_the_highest_finite_bound() {
        let hist = h(&[(1.0, 1.0), (2.0, 2.0), (INF, 10.0)]);
        assert_eq!(hist.quantile(0.99), Some(2.0));
    }

    #[test]
    fn quantile_needs_observations_inf_and_a_valid_q() {
        assert_eq!(h(&[(1.0, 0.0), (INF, 0.0)]).quantile(0.5), None);
        assert_eq!(h(&[(1.0, 3.0), (2.0, 3.0)]).quantile(0.5), None);
        assert_eq!(h(&[(INF, 3.0)]).quantile(0.5), None);
        let ok = h(&[(1.0, 3.0), (INF, 3.0)]);
        assert_eq!(ok.quantile(1.5), None);
        assert_eq!(ok.quantile(-0.1), None);
        assert_eq!(ok.quantile(f64::NAN), None);
    }

    #[test]
    fn quantile_skips_empty_buckets() {
        // Everything in (0.5, 1]: the p50 is in that bucket, not in the empty ones before it.
        let hist = h(&[(0.25, 0.0), (0.5, 0.0), (1.0, 4.0), (INF, 4.0)]);
        assert_eq!(hist.quantile(0.5), Some(0.75));
    }

    #[test]
    fn quantile_tolerates_non_monotonic_counts() {
        let hist = h(&[(1.0, 5.0), (2.0, 4.0), (INF, 10.0)]);
        assert_eq!(hist.quantile(0.5), Some(1.0));
    }

    #[test]
    fn from_buckets_sorts_by_bound() {
        let hist = Histogram::from_buckets(vec![(INF, 3.0), (0.5, 1.0), (1.0, 2.0)], 1.5, 3.0);
        assert_eq!(hist.bounds, vec![0.5, 1.0, INF]);
        assert_eq!(hist.counts, vec![1.0, 2.0, 3.0]);
        assert_eq!(hist.per_bucket(), vec![1.0, 1.0, 1.0]);
        assert_eq!(hist.mean(), Some(0.5));
    }

    #[test]
    fn since_is_the_window_and_detects_resets() {
        let before = Histogram::from_buckets(vec![(1.0, 2.0), (INF, 3.0)], 2.0, 3.0);
        let after = Histogram::from_buckets(vec![(1.0, 5.0), (INF, 7.0)], 6.0, 7.0);
        let window = after.since(&before).unwrap();
        assert_eq!(window.counts, vec![3.0, 4.0]);
        assert_eq!(window.count, 4.0);
        assert_eq!(window.sum, 4.0);
        // The engine restarted: counts went down.
        assert_eq!(before.since(&after), None);
        // Different buckets: not comparable.
        let other = Histogram::from_buckets(vec![(2.0, 5.0), (INF, 7.0)], 6.0, 7.0);
        assert_eq!(other.since(&before), None);
    }

    #[test]
    fn add_sums_matching_buckets() {
        let mut total = Histogram::default();
        total.add(&Histogram::from_buckets(
            vec![(1.0, 1.0), (INF, 2.0)],
            1.0,
            2.0,
        ));
        total.add(&Histogram::from_buckets(
            vec![(1.0, 3.0), (INF, 3.0)],
            0.5,
            3.0,
        ));
        assert_eq!(total.bounds, vec![1.0, INF]);
        assert_eq!(total.counts, vec![4.0, 5.0]);
        assert_eq!(total.count, 5.0);
        assert_eq!(total.sum, 1.5);
        assert_eq!(total.total(), 5.0);
    }
}
