//! Clock skew: how far a node's event times are from when TART received them, in buckets of
//! powers of two. Bucket 0 is under a millisecond either way; bucket k > 0 is a skew of
//! [2^(k−1), 2^k) ms with the event dated in the past (a slow clock, or delay), −k the same in
//! the future. A node that counts from the Unix epoch instead of JAM's dates every event 55
//! years late: bucket 41.

/// A skew of `received − event time`, both in JIP-3 microseconds.
pub fn bucket(received: u64, event_time: u64) -> i8 {
    let skew = i128::from(received) - i128::from(event_time);
    let millis = skew.unsigned_abs() / 1000;
    if millis == 0 {
        return 0;
    }
    let k = (128 - millis.leading_zeros()) as i8; // floor(log2(ms)) + 1
    if skew > 0 {
        k
    } else {
        -k
    }
}

/// The skew a bucket stands for, in milliseconds: its bounds, nearer zero first.
pub fn bounds_ms(bucket: i8) -> (f64, f64) {
    if bucket == 0 {
        return (0.0, 1.0);
    }
    let k = i32::from(bucket.unsigned_abs());
    let sign = f64::from(bucket.signum());
    (sign * 2f64.powi(k - 1), sign * 2f64.powi(k))
}

/// A skew above this many milliseconds either way is absurd: no clock or network is that far
/// off (an hour).
pub const ABSURD_MS: f64 = 3_600_000.0;

/// The bucket below which `share` (0 to 1) of the counted events fall, from (bucket, events).
pub fn percentile(buckets: &[(i8, i64)], share: f64) -> Option<i8> {
    let mut sorted = buckets.to_vec();
    sorted.sort_unstable();
    let total: i64 = sorted.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let wanted = (share * total as f64).ceil().max(1.0) as i64;
    let mut seen = 0;
    sorted.into_iter().find_map(|(bucket, n)| {
        seen += n;
        (seen >= wanted).then_some(bucket)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_signed_powers_of_two_of_milliseconds() {
        let t = 10_000_000_000;
        assert_eq!(bucket(t, t), 0);
        assert_eq!(bucket(t + 999, t), 0);
        assert_eq!(bucket(t + 1_000, t), 1);
        assert_eq!(bucket(t + 3_000, t), 2);
        assert_eq!(bucket(t, t + 3_000), -2);
        assert_eq!(bounds_ms(2), (2.0, 4.0));
        assert_eq!(bounds_ms(-2), (-2.0, -4.0));
        // Counting from the Unix epoch (1970) instead of JAM's (2025): 55 years late.
        let unix_epoch_late = 1_735_732_800_000_000u64;
        assert_eq!(bucket(t + unix_epoch_late, t), 41);
        assert!(bounds_ms(41).0 > ABSURD_MS);
        assert_eq!(bucket(0, u64::MAX), -55, "the farthest a timestamp can be");
    }

    #[test]
    fn percentiles_walk_the_buckets_in_order_of_skew() {
        let counts = [(3, 10), (-1, 89), (41, 1)];
        assert_eq!(percentile(&counts, 0.5), Some(-1));
        assert_eq!(percentile(&counts, 0.99), Some(3));
        assert_eq!(percentile(&counts, 1.0), Some(41));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
