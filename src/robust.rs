//! Network figures one node cannot move: taken over all nodes' reports, not their maximum.

/// The lower median: the highest value at least half of `values` reach, so with one honest
/// node of two a forged one cannot win. 0 for none.
pub fn lower_median(mut values: Vec<i64>) -> i64 {
    values.sort_unstable();
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lower_median_ignores_one_outlier() {
        assert_eq!(lower_median(vec![100, 4_294_967_295, 101]), 101);
        assert_eq!(lower_median(vec![9_999, 7]), 7);
        assert_eq!(lower_median(vec![5]), 5);
        assert_eq!(lower_median(Vec::new()), 0);
    }
}
